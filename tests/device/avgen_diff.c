/* avgen-diff: `avgen diff` for the runtime-only build (AVGEN_DATA=OFF), whose avgen is not built. */
#include <stdio.h>
#include <string.h>

#include "st_diff.h"

int main(int argc, char **argv) { return st_diff_main(argc - 1, argv + 1); }
