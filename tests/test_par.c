/* rt_par (runtime/rt_par.h): every index of [0, n) is run exactly once, in chunks no smaller than the grain and
 * no more than the thread count, on more than one thread when there is work for them; a loop started inside a
 * loop, or while another thread's loop holds the pool, runs on its own thread; AVGEN_CPU_THREADS is read as
 * documented and anything else is refused with one sentence. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "rt_par.h"

typedef struct {
    long n;
    atomic_int *hits;    /* per index */
    atomic_int chunks;   /* calls of the body */
    long min_chunk;      /* smallest chunk seen (under mu) */
    pthread_mutex_t mu;
    pthread_t seen[64];  /* distinct threads that ran a chunk */
    int n_seen;
    int nested_threads;  /* for the nested case: the inner loop's thread count */
    int slow;            /* sleep in each chunk, so that every worker gets one */
} job;

static void body(void *arg, long lo, long hi) {
    job *j = arg;
    for (long i = lo; i < hi; i++) atomic_fetch_add(&j->hits[i], 1);
    atomic_fetch_add(&j->chunks, 1);
    pthread_mutex_lock(&j->mu);
    if (hi - lo < j->min_chunk) j->min_chunk = hi - lo;
    int known = 0;
    for (int k = 0; k < j->n_seen; k++) known |= pthread_equal(j->seen[k], pthread_self());
    if (!known && j->n_seen < 64) j->seen[j->n_seen++] = pthread_self();
    pthread_mutex_unlock(&j->mu);
    if (j->slow) usleep(20000);
}

static void job_init(job *j, long n) {
    memset(j, 0, sizeof *j);
    j->n = n;
    j->hits = calloc((size_t)(n > 0 ? n : 1), sizeof(atomic_int));
    j->min_chunk = n + 1;
    pthread_mutex_init(&j->mu, NULL);
}

static int exactly_once(const job *j) {
    for (long i = 0; i < j->n; i++)
        if (atomic_load(&j->hits[i]) != 1) return 0;
    return 1;
}

static void job_free(job *j) {
    free(j->hits);
    pthread_mutex_destroy(&j->mu);
}

/* one case: n indices, grain, threads; chunk count and size bounds */
static void run_case(long n, long grain, int threads, int slow) {
    job j;
    job_init(&j, n);
    j.slow = slow;
    rt_par_for(threads, n, grain, body, &j);
    CHECK_MSG(exactly_once(&j), "n %ld grain %ld threads %d: an index ran other than once", n, grain, threads);
    const int c = atomic_load(&j.chunks);
    CHECK_MSG(c <= (threads > 1 ? threads : 1), "n %ld grain %ld threads %d: %d chunks", n, grain, threads, c);
    if (n > 0 && c > 1) CHECK_MSG(j.min_chunk >= grain, "a chunk of %ld indices under the grain %ld", j.min_chunk, grain);
    if (n == 0) CHECK_EQ_I64(c, 0);
    job_free(&j);
}

static void outer_body(void *arg, long lo, long hi) {
    job *j = arg;
    for (long i = lo; i < hi; i++) {
        job inner;
        job_init(&inner, 100);
        rt_par_for(j->nested_threads, 100, 1, body, &inner); /* the pool is busy: runs here */
        if (exactly_once(&inner) && atomic_load(&inner.chunks) == 1) atomic_fetch_add(&j->hits[i], 1);
        job_free(&inner);
    }
}

static void *other_thread(void *arg) {
    job *j = arg;
    rt_par_for(4, j->n, 1, body, j);
    return NULL;
}

int main(void) {
    /* sizes around the split points, more threads than indices, a grain larger than n, n = 0 */
    const long ns[] = {0, 1, 2, 3, 7, 64, 197, 1000};
    const long grains[] = {1, 3, 50, 2000};
    const int threads[] = {1, 2, 3, 8, 33};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof grains / sizeof grains[0]; b++)
            for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) run_case(ns[a], grains[b], threads[t], 0);

    /* with work for four threads that each sleep, more than one thread runs chunks */
    job j;
    job_init(&j, 4);
    j.slow = 1;
    rt_par_for(4, 4, 1, body, &j);
    CHECK(exactly_once(&j));
    CHECK_MSG(j.n_seen > 1, "4 slow chunks on 4 threads ran on %d thread(s)", j.n_seen);
    job_free(&j);

    /* a loop inside a loop's chunk runs on the chunk's thread, whole */
    job o;
    job_init(&o, 6);
    o.nested_threads = 4;
    rt_par_for(3, 6, 1, outer_body, &o);
    CHECK_MSG(exactly_once(&o), "a nested loop did not run whole on its thread");
    job_free(&o);

    /* two threads' loops at once: each completes (one on the pool, the other on its own thread) */
    job x, y;
    job_init(&x, 500), job_init(&y, 500);
    x.slow = y.slow = 0;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_thread, &x) == 0);
    rt_par_for(4, 500, 1, body, &y);
    pthread_join(th, NULL);
    CHECK(exactly_once(&x));
    CHECK(exactly_once(&y));
    job_free(&x), job_free(&y);

    /* AVGEN_CPU_THREADS */
    char err[200];
    setenv("AVGEN_CPU_THREADS", "3", 1);
    CHECK_EQ_I64(rt_par_threads(err, sizeof err), 3);
    setenv("AVGEN_CPU_THREADS", "256", 1);
    CHECK_EQ_I64(rt_par_threads(err, sizeof err), 256);
    const char *bad[] = {"0", "257", "-1", "two", "3x", " 3", "1e2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("AVGEN_CPU_THREADS", bad[i], 1);
        err[0] = 0;
        CHECK_MSG(rt_par_threads(err, sizeof err) == 0, "AVGEN_CPU_THREADS=%s accepted", bad[i]);
        CHECK_STR_CONTAINS(err, "expected the number of CPU threads, 1 to 256");
    }
    unsetenv("AVGEN_CPU_THREADS");
    const int d = rt_par_threads(err, sizeof err);
    CHECK_MSG(d >= 1 && d <= 32, "default thread count %d", d);
    setenv("AVGEN_CPU_THREADS", "", 1);
    CHECK_EQ_I64(rt_par_threads(err, sizeof err), d);
    return CHECK_DONE();
}
