/* rt_par: a parallel for over [0, n) on a pool of worker threads, for the CPU backend's matrix products and the
 * parameters' random initialisation. The
 * callers split work so that each index is computed the same way whichever thread takes it, so results do not
 * depend on the thread count (rows of a product: each row's sums run in the same order).
 *
 * The thread count is AVGEN_CPU_THREADS (1 to 256) when set, else the CPUs this process may run on (at most
 * 32). The pool's workers start at the first parallel call and live until the process exits. One loop runs on
 * the pool at a time: a call made while another runs (another thread of the process) runs its loop on the
 * calling thread alone. */
#ifndef AVGEN_RT_PAR_H
#define AVGEN_RT_PAR_H
#include <stddef.h>

/* The thread count, or 0 with err (one sentence) when AVGEN_CPU_THREADS is set to something else than an
 * integer from 1 to 256. */
int rt_par_threads(char *err, size_t errlen);

/* rt_par_threads, read once per process (1 when AVGEN_CPU_THREADS is bad: rt_ctx_init refuses that first). */
int rt_par_count(void);

/* fn(arg, lo, hi) over [0, n) in chunks of about n / threads (at most threads of them, none of fewer than grain
 * indices), on the pool and the calling thread; returns when every chunk is done. threads <= 1 or n < 2 grain:
 * fn(arg, 0, n) on the calling thread. */
typedef void (*rt_par_fn)(void *arg, long lo, long hi);
void rt_par_for(int threads, long n, long grain, rt_par_fn fn, void *arg);
#endif
