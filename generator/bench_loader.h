/* avgen bench-loader: the clip loader's throughput on a prepared folder (a benchmark, not a test). */
#ifndef AVGEN_BENCH_LOADER_H
#define AVGEN_BENCH_LOADER_H
int gen_bench_loader_main(int argc, char **argv); /* argv[0] is "bench-loader" */
#endif
