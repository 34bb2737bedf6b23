/* rt_dl: loading a CUDA toolkit library at run time (NVRTC, cuBLASLt), so binaries start without it. */
#ifndef AVGEN_RT_DL_H
#define AVGEN_RT_DL_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dlopen of the library: $ENV_VAR alone when it is set, else SONAME, then the unversioned name, then the
 * toolkit's default path. NULL with one sentence in why ("<what> cannot be loaded (...); install the
 * CUDA toolkit 13 or set ENV_VAR") when none loads. */
void *rt_dl_open(const char *env_var, const char *soname, const char *plain, const char *what, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
