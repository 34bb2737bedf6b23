/* rt_dl.c: see rt_dl.h. */
#include "rt_dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *rt_dl_open(const char *env_var, const char *soname, const char *plain, const char *what, char *why, size_t whylen) {
    const char *env = getenv(env_var);
    char toolkit[256];
    snprintf(toolkit, sizeof toolkit, "/usr/local/cuda/lib64/%s", soname);
    const char *const names[] = {env, soname, plain, toolkit};
    void *h = NULL;
    /* $ENV_VAR, when set, is the only library tried */
    const size_t end = env ? 1 : sizeof names / sizeof names[0];
    for (size_t i = env ? 0 : 1; i < end && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        snprintf(why, whylen, "%s cannot be loaded (%s); install the CUDA toolkit 13 or set %s", what, env ? env : soname,
                 env_var);
    return h;
}
