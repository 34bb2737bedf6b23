/* rt_par.c: see rt_par.h. One job at a time on the pool: the caller publishes it under the pool's mutex and bumps
 * a generation number; workers and the caller take chunk numbers under the mutex and run them outside it; the
 * caller returns once every chunk is finished. The caller takes chunks too, so a job completes even with no worker
 * (none could be started, or a forked child, which has none of its parent's threads). */
#include "rt_par.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256
#define DEFAULT_MAX 32

static struct {
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t go, done;
    pthread_mutex_t busy; /* held by the job on the pool */
    int workers;
    unsigned long gen;
    rt_par_fn fn;
    void *arg;
    long n;
    int chunks, next, finished;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
       0, 0, NULL, NULL, 0, 0, 0, 0};

int rt_par_threads(char *err, size_t errlen) {
    const char *e = getenv("AVGEN_CPU_THREADS");
    if (e && *e) {
        char *end;
        const long v = strspn(e, "0123456789") == strlen(e) && strlen(e) <= 3 ? strtol(e, &end, 10) : 0;
        if (v < 1 || v > MAX_THREADS) {
            snprintf(err, errlen, "AVGEN_CPU_THREADS=%.40s: expected the number of CPU threads, 1 to %d", e, MAX_THREADS);
            return 0;
        }
        return (int)v;
    }
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > DEFAULT_MAX ? DEFAULT_MAX : n;
}

int rt_par_count(void) {
    static int n; /* threads that race to set it set the same value */
    int v = __atomic_load_n(&n, __ATOMIC_RELAXED);
    if (!v) {
        char e[160];
        const int t = rt_par_threads(e, sizeof e);
        v = t > 0 ? t : 1;
        __atomic_store_n(&n, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* Runs chunks of the current job until none is left; called and returns with P.mu held. */
static void take_chunks(void) {
    while (P.next < P.chunks) {
        const int c = P.next++;
        const rt_par_fn fn = P.fn;
        void *arg = P.arg;
        const long lo = P.n * c / P.chunks, hi = P.n * (c + 1) / P.chunks;
        pthread_mutex_unlock(&P.mu);
        fn(arg, lo, hi);
        pthread_mutex_lock(&P.mu);
        if (++P.finished == P.chunks) pthread_cond_broadcast(&P.done);
    }
}

/* arg: the generation before the job that started the worker, which it then joins */
static void *worker(void *arg) {
    unsigned long seen = (unsigned long)(uintptr_t)arg;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (P.gen == seen) pthread_cond_wait(&P.go, &P.mu);
        seen = P.gen;
        take_chunks();
    }
    return NULL;
}

void rt_par_for(int threads, long n, long grain, rt_par_fn fn, void *arg) {
    if (grain < 1) grain = 1;
    long chunks = n / grain;
    if (chunks > threads) chunks = threads;
    if (chunks > MAX_THREADS) chunks = MAX_THREADS;
    if (chunks < 2 || pthread_mutex_trylock(&P.busy)) {
        if (n > 0) fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&P.mu);
    while (P.workers < chunks - 1) {  /* the caller runs chunks too */
        pthread_t t;
        pthread_attr_t at;
        int ok = pthread_attr_init(&at) == 0;
        if (ok) pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        ok = ok && pthread_create(&t, &at, worker, (void *)(uintptr_t)P.gen) == 0;
        pthread_attr_destroy(&at);
        if (!ok) break; /* fewer workers: the chunks are the same, more of them run here */
        P.workers++;
    }
    P.fn = fn, P.arg = arg, P.n = n, P.chunks = (int)chunks, P.next = 0, P.finished = 0;
    P.gen++;
    pthread_cond_broadcast(&P.go);
    take_chunks();
    while (P.finished < P.chunks) pthread_cond_wait(&P.done, &P.mu);
    pthread_mutex_unlock(&P.mu);
    pthread_mutex_unlock(&P.busy);
}
