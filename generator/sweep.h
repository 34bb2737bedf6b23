/* avgen sweep: clip length T against batch B for one description. Without a GPU: what each (T, B) needs and
 * whether it fits (the CUDA backend's plan), its roofline, and the largest batch that fits at each T; the job
 * list of `avgen bench` runs that measure the cells that fit (DESIGN.md: sweeps are independent jobs, avgen
 * writes the list, a scheduler runs it); and, given the folder those jobs wrote, the measured table with the
 * fastest cells marked. docs/bench.md says more. */
#ifndef AVGEN_SWEEP_H
#define AVGEN_SWEEP_H

/* argv[0] is "sweep"; self: the path of this avgen, for the job lines. */
int gen_sweep_main(int argc, char **argv, const char *self);
#endif
