/* st_diff: compare two safetensors files (step dumps) tensor by tensor; `avgen diff` and the standalone
 * avgen-diff of the runtime-only build (the GPU machine's) share it. */
#ifndef AVGEN_ST_DIFF_H
#define AVGEN_ST_DIFF_H

#define ST_DIFF_USAGE \
    "usage: avgen diff A.safetensors B.safetensors [--rtol 1e-4] [--atol 1e-6] [--grad-floor]\n" \
    "                  [--rtol-for SUFFIX=RTOL ...] [--only-common]\n" \
    "\n" \
    "Compares two step dumps (or any two safetensors files) tensor by tensor: the relative L2 error\n" \
    "||a - b|| / max(||b||, floor) of each tensor present in both must be <= rtol, with floor =\n" \
    "atol * sqrt(n). --grad-floor raises the floor to sqrt(n) times the RMS of all elements of B's grad.*\n" \
    "tensors: a gradient that is tiny because its terms cancel (ln_before.bias is exactly zero in exact\n" \
    "arithmetic, a gate gradient can be a small difference of large sums) is then held to the error\n" \
    "expected at the typical gradient magnitude instead of its own. --rtol-for SUFFIX=RTOL (up to 16,\n" \
    "the last match wins) holds the tensors whose names end with SUFFIX to RTOL instead: e.g. .gate=0.3,\n" \
    "since a gate's gradient is one sum over a whole activation whose terms cancel, so bf16 rounding of\n" \
    "the terms shows in it many times larger than in other tensors. Prints the tensors that differ; exit\n" \
    "status 0 when all agree, 1 when some differ (or, without --only-common, when a tensor is in one\n" \
    "file only), 2 on bad input.\n"

/* argv: the options after the command name. Exit status: 0 all agree, 1 some differ, 2 bad input. */
int st_diff_main(int argc, char **argv);
#endif
