// runtime/emu/cuda_emu.cc: the CUDA runtime calls, the cuBLASLt calls and the fiber scheduler of the CUDA
// emulator (cuda_emu.h says what it is for and what it checks). x86-64 only (the fiber switch).
#include "cuda_emu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <memory>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulator switches fibers with x86-64 code"
#endif

// Opaque handle types of the CUDA headers, defined here.
struct EmuWork {
    std::function<void()> op;  // the work, or (wait_e set) a wait until event wait_e's record wait_n has run
    struct CUevent_st *wait_e;
    long long wait_n;
};
struct CUstream_st {
    int capturing;
    int invalidated;  // a call a capture does not allow was made during it: its end fails
    struct CUgraph_st *graph;
    int lag;          // its work runs late, only when something waits for it (AVGEN_EMU_LAG_STREAM)
    // work submitted and not yet run: a lagging stream's, or any stream's behind a wait for an event not yet reached
    std::deque<EmuWork> queue;
};
struct CUgraph_st {
    std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> ops;
};
struct CUevent_st {
    double t;
    int recorded;
    long long submitted, done;  // records asked for, and the last one run (a wait waits for the latest asked)
};

// The tracing build's hooks (emu_trace.cc), nothing in the plain one.
#ifdef AVGEN_EMU_TRACE
#define TRACE(call) (trace::on() ? (void)trace::call : (void)0)
#else
#define TRACE(call) ((void)0)
#endif

namespace avgen_emu {

Thread *cur;
uint3 block_idx;
dim3 block_dim, grid_dim;
unsigned char *dyn_smem;

namespace {

// --------------------------------------------------------------------------------------------- errors
cudaError_t last_error = cudaSuccess;  // cudaGetLastError's
cudaError_t sticky = cudaSuccess;      // a kernel's fault: every later synchronisation reports it

cudaError_t fail(cudaError_t e) {
    if (last_error == cudaSuccess) last_error = e;
    return e;
}

__attribute__((format(printf, 1, 2))) void kernel_fault(const char *fmt, ...) {
    if (sticky == cudaSuccess) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "CUDA emulator: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
        sticky = cudaErrorLaunchFailure;
    }
}

// A setting of the emulator from the environment: AVGEN_EMU_*=1 (each caller reads it once).
bool env_on(const char *name) { return getenv(name) && !strcmp(getenv(name), "1"); }

// AVGEN_EMU_DRY=1: a dry run. Launches and cuBLASLt matmuls are checked and logged but not run, and copies, sets
// and the NaN fill of new allocations are skipped, so device memory is never touched: a full-size step's host code
// and launch shapes go through in seconds (with AVGEN_EMU_LAUNCHES). Every result is garbage.
bool dry() {
    static const bool on = env_on("AVGEN_EMU_DRY");
    return on;
}
// AVGEN_EMU_LAUNCHES=FILE: one line a kernel launch, cuBLASLt matmul, copy and set, in the order the host submits
// them (docs/emulator.md has the columns); NULL when not set.
FILE *launch_log() {
    static FILE *f = [] {
        const char *p = getenv("AVGEN_EMU_LAUNCHES");
        if (!p || !*p) return (FILE *)NULL;
        FILE *o = fopen(p, "w");
        if (!o) {
            fprintf(stderr, "CUDA emulator: cannot write AVGEN_EMU_LAUNCHES file %s: %s\n", p, strerror(errno));
            exit(2);
        }
        fprintf(o, "what\tname\tgrid\tblock\tsmem\tcaptured\n");
        atexit([] { fclose(launch_log()); });
        return o;
    }();
    return f;
}
// A copy (kind) or set (kind NULL) of n bytes in the launch log.
void log_copy(const char *kind, size_t n, bool captured) {
    if (FILE *f = launch_log()) fprintf(f, "%s\t%s\t%zu\t-\t0\t%d\n", kind ? "copy" : "set", kind ? kind : "device", n, captured ? 1 : 0);
}
const char *copy_kind(cudaMemcpyKind k) {
    return k == cudaMemcpyHostToDevice ? "H2D" : k == cudaMemcpyDeviceToHost ? "D2H" : k == cudaMemcpyDeviceToDevice ? "D2D"
         : k == cudaMemcpyHostToHost   ? "H2H" : "default";
}

double now() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// ----------------------------------------------------------------------------------- device memory
// Each allocation ends at a PROT_NONE page; its bytes start as 0xff (NaN as float and as double).
struct Alloc {
    void *map;
    size_t map_bytes, bytes;
};
std::map<uintptr_t, Alloc> allocs;
std::map<uintptr_t, size_t> pinned;  // cudaMallocHost's blocks: start, bytes

// Stream capture (cudaStreamBeginCapture .. EndCapture): the streams being captured. A call that CUDA does not
// allow while a capture is in progress (one that allocates, frees or synchronises, a synchronous copy or set,
// an asynchronous copy from or to pageable host memory) fails with cudaErrorStreamCaptureUnsupported and
// invalidates the captures, whose end then fails, as on the GPU.
std::vector<cudaStream_t> captures;
cudaError_t capture_unsupported() {
    for (cudaStream_t s : captures) s->invalidated = 1;
    fprintf(stderr, "CUDA emulator: a call that stream capture does not allow, made during a capture\n");
    return cudaErrorStreamCaptureUnsupported;
}
bool is_pinned(const void *p, size_t n) {
    auto it = pinned.upper_bound((uintptr_t)p);
    if (it == pinned.begin()) return false;
    --it;
    return (uintptr_t)p + n <= it->first + it->second;
}
size_t allocated;
// The device's memory: 16 GiB, or AVGEN_EMU_MEMORY bytes (a test's way to run out of it).
size_t total_memory() {
    static size_t v = 0;
    if (!v) {
        const char *e = getenv("AVGEN_EMU_MEMORY");
        v = e && *e ? (size_t)strtoull(e, NULL, 10) : 0;
        if (!v) v = dry() ? 79ull << 30 : 16ull << 30;  // (a dry run touches none of it: about an H100's 79.2 GiB)
    }
    return v;
}

// --------------------------------------------------------------------------------------------- fibers
extern "C" void avgen_emu_switch(void **save_sp, void *to_sp);
asm(R"(
    .text
    .globl avgen_emu_switch
    .type avgen_emu_switch, @function
avgen_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size avgen_emu_switch, .-avgen_emu_switch
)");

enum { READY, AT_BLOCK, AT_WARP, DONE, TRAPPED };
unsigned long long block_serial;  // counts blocks run (shared_touch's "first use in this block")
std::map<void *, unsigned long long> shared_seen;
char misaligned_why[160];
struct Fiber {
    void *sp;
    int state;
    const char *bar_file;  // the __syncthreads it waits at (AT_BLOCK): its source line
    int bar_line;
    const char *warp_what;  // the warp-synchronous instruction it is at (AT_WARP), and where
    Thread t;
};
const size_t kStack = 256 << 10;
const int kMaxThreads = 1024;
Fiber fibers[kMaxThreads];
unsigned char *stacks;  // kMaxThreads stacks, each above a guard page
void *sched_sp;
Fiber *curf;
const std::function<void()> *body;
unsigned char xbuf[2][32][32][32];  // parity, warp, lane, bytes

void fiber_main() {
    (*body)();
    curf->state = DONE;
    avgen_emu_switch(&curf->sp, sched_sp);
    __builtin_unreachable();
}

bool stacks_ready() {
    if (stacks) return true;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), each = kStack + page;
    void *m = mmap(NULL, each * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    for (int i = 0; i < kMaxThreads; i++) mprotect((unsigned char *)m + i * each, page, PROT_NONE);
    stacks = (unsigned char *)m;
    return true;
}

void yield(int state) {
    curf->state = state;
    avgen_emu_switch(&curf->sp, sched_sp);
}

// Runs one block of n threads to completion; false (with the fault recorded) when it cannot.
bool run_block(const char *name, int n, bool reverse) {
    block_serial++;
    TRACE(block_begin());
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), each = kStack + page;
    for (int i = 0; i < n; i++) {
        Fiber &f = fibers[i];
        f.t.tid = make_uint3((unsigned)(i % block_dim.x), (unsigned)(i / block_dim.x % block_dim.y),
                             (unsigned)(i / (block_dim.x * block_dim.y)));
        f.t.lane = i & 31, f.t.warp = i >> 5, f.t.parity = 0;
        void **sp = (void **)(stacks + (size_t)i * each + each);  // top of stack i, 16-byte aligned
        *--sp = NULL;                                               // fiber_main's return address (never used)
        *--sp = (void *)&fiber_main;
        for (int r = 0; r < 6; r++) *--sp = NULL;  // rbp, rbx, r12-r15
        f.sp = sp;
        f.state = READY;
    }
    const int warps = (n + 31) / 32;
    for (;;) {
        for (int k = 0; k < n; k++) {
            const int i = reverse ? n - 1 - k : k;
            if (fibers[i].state == READY) {
                curf = &fibers[i];
                cur = &fibers[i].t;
                avgen_emu_switch(&sched_sp, fibers[i].sp);
                if (curf->state == TRAPPED) {
                    kernel_fault("kernel %s: %s (block %u,%u,%u thread %d)", name, misaligned_why[0] ? misaligned_why : "__trap",
                                 block_idx.x, block_idx.y, block_idx.z, i);
                    misaligned_why[0] = 0;
                    return false;
                }
            }
        }
        bool released = false, live = false;
        for (int w = 0; w < warps; w++) {
            int at_warp = 0, at_block = 0, done = 0;
            const int lanes = n - 32 * w < 32 ? n - 32 * w : 32;
            for (int l = 0; l < lanes; l++) {
                const int s = fibers[32 * w + l].state;
                at_warp += s == AT_WARP, at_block += s == AT_BLOCK, done += s == DONE;
            }
            live = live || done < lanes;
            if (!at_warp) continue;
            if (at_block || done) {
                kernel_fault("kernel %s: a warp-synchronous instruction (shuffle, mma, ldmatrix) in warp %d of block "
                             "%u,%u,%u was reached by %d of its %d lanes (%d at __syncthreads, %d exited)",
                             name, w, block_idx.x, block_idx.y, block_idx.z, at_warp, lanes, at_block, done);
                return false;
            }
            for (int l = 1; l < lanes; l++)
                if (fibers[32 * w + l].warp_what != fibers[32 * w].warp_what &&
                    strcmp(fibers[32 * w + l].warp_what, fibers[32 * w].warp_what)) {
                    kernel_fault("kernel %s: lanes 0 and %d of warp %d of block %u,%u,%u are at different warp-synchronous "
                                 "instructions (%s; %s)", name, l, w, block_idx.x, block_idx.y, block_idx.z,
                                 fibers[32 * w].warp_what, fibers[32 * w + l].warp_what);
                    return false;
                }
            for (int l = 0; l < lanes; l++) fibers[32 * w + l].state = READY;
            TRACE(warp_sync(w));
            released = true;
        }
        if (released) continue;
        if (!live) {
#ifdef AVGEN_EMU_TRACE
            char why[1024];
            if (trace::on() && !trace::block_end(why, sizeof why)) {
                kernel_fault("kernel %s: %s (block %u,%u,%u)", name, why, block_idx.x, block_idx.y, block_idx.z);
                return false;
            }
#endif
            return true;
        }
        // every thread left is at __syncthreads: the same one, and none has exited
        int first = -1, exited = 0;
        for (int i = 0; i < n; i++) {
            if (fibers[i].state == DONE) exited++;
            else if (first < 0) first = i;
            else if (fibers[i].bar_line != fibers[first].bar_line ||
                     (fibers[i].bar_file != fibers[first].bar_file && strcmp(fibers[i].bar_file, fibers[first].bar_file))) {
                kernel_fault("kernel %s: threads %d and %d of block %u,%u,%u wait at different __syncthreads (lines %d and %d)",
                             name, first, i, block_idx.x, block_idx.y, block_idx.z, fibers[first].bar_line, fibers[i].bar_line);
                return false;
            }
        }
        if (exited) {
            kernel_fault("kernel %s: %d of the %d threads of block %u,%u,%u wait at __syncthreads after the other %d exited",
                         name, n - exited, n, block_idx.x, block_idx.y, block_idx.z, exited);
            return false;
        }
        for (int i = 0; i < n; i++)
            if (fibers[i].state == AT_BLOCK) fibers[i].state = READY;
        TRACE(barrier());
    }
}

// Asynchronous copies from host memory to the device, not yet done: they run at the next operation of any stream,
// synchronisation, synchronous copy or free (flush), so a source changed or handed back before then is read as it
// is then, as a GPU may read it late.
std::vector<std::function<void()>> deferred;
void flush() {
    std::vector<std::function<void()>> ops;
    ops.swap(deferred);
    for (auto &op : ops) op();
}

// Streams: each runs its work in order. A lagging stream (AVGEN_EMU_LAG_STREAM=N[,N...]: the N-th stream created,
// counting from 1) queues its work, which runs only when the host waits for it (a synchronisation of that stream,
// of an event recorded there, of the device, a free; not a synchronous copy or set, which runs on the legacy
// stream) or, as far as needed, for work that waits for it (cudaStreamWaitEvent). Every other stream runs its
// work as it is submitted, except behind a wait for an event not yet reached: then its later work queues too,
// until the host waits for it. So work of one stream that another stream or the host uses without waiting for it
// is seen not done yet (the lagging stream writes it), or already overwritten (the lagging stream reads it), as on
// a GPU that runs two streams side by side; and host memory that an upload behind such a wait reads is read when
// the host waits, not before.
std::vector<cudaStream_t> streams;  // the live ones
bool lags(int ordinal) {
    const char *e = getenv("AVGEN_EMU_LAG_STREAM");
    for (const char *p = e; p && *p;) {
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v == ordinal) return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}
// The oldest queued work of s, when it can run (not a wait for an event not yet reached). False when it cannot.
bool step(cudaStream_t s) {
    if (s->queue.empty()) return false;
    EmuWork &w = s->queue.front();
    if (w.wait_e && w.wait_e->done < w.wait_n) return false;
    std::function<void()> op = std::move(w.op);
    s->queue.pop_front();
    if (op) op();
    return true;
}
// The streams that do not lag, as far as they can run.
void pump() {
    for (bool ran = true; ran;) {
        ran = false;
        for (size_t i = 0; i < streams.size(); i++)
            if (!streams[i]->lag)
                while (step(streams[i])) ran = true;
    }
}
// Work runs until done() holds: the other streams as far as they can, and the lagging ones one operation at a time
// (oldest stream first) until it holds or nothing more can run.
template <class F> void force(F done) {
    pump();
    while (!done()) {
        bool ran = false;
        for (size_t i = 0; i < streams.size() && !ran; i++)
            if (streams[i]->lag) ran = step(streams[i]);
        if (!ran) break;
        pump();
    }
}
bool all_idle() {
    for (size_t i = 0; i < streams.size(); i++)
        if (!streams[i]->queue.empty()) return false;
    return true;
}
void sync_all() {  // everything submitted done: the deferred copies, then every stream's queued work
    flush();
    force(all_idle);
}

// Work for stream s, after the deferred copies: run now unless s lags or has work queued (then when its turn comes).
void enqueue(cudaStream_t s, EmuWork w) {
    flush();
    s->queue.push_back(std::move(w));
    if (!s->lag) pump();  // (what it records may let another stream's wait go on)
}

// Runs op now (after the deferred copies), queues it (a lagging stream, or one behind a wait), or records it in the
// stream's graph while the stream is captured.
void submit(cudaStream_t s, std::function<void()> op) {
    if (s && s->capturing) {
        s->graph->ops.push_back(std::move(op));
        return;
    }
    if (!s) {
        flush();
        op();
        return;
    }
    enqueue(s, EmuWork{std::move(op), NULL, 0});
}

}  // namespace

void syncthreads(const char *file, int line) {
    curf->bar_file = file, curf->bar_line = line;
    yield(AT_BLOCK);
}

namespace {
bool race_check() {
    static const bool on = env_on("AVGEN_EMU_RACECHECK");
    return on;
}

// Every block of a launch, in index order or (reverse) the other way round, each block's threads too; false
// when a fault stopped it (recorded).
bool run_grid(const char *name, dim3 grid, dim3 block, size_t smem, const std::function<void()> &fn, bool reverse) {
    std::vector<unsigned char> sm(smem ? smem : 1, 0xff);  // uninitialised: NaN bytes (again at each block)
    const std::function<void()> *saved = body;
    body = &fn;
    grid_dim = grid, block_dim = block, dyn_smem = sm.data();
    TRACE(launch_begin(name, sm.data(), smem));
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    const unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z;
    bool ok = true;
    for (unsigned long long k = 0; k < nb && ok; k++) {
        const unsigned long long b = reverse ? nb - 1 - k : k;
        block_idx = make_uint3((unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((unsigned long long)grid.x * grid.y)));
        if (k) memset(sm.data(), 0xff, sm.size());
        ok = run_block(name, (int)threads, reverse);
    }
    TRACE(launch_end());
    body = saved;
    return ok;
}
}  // namespace

// For tests/test_emu.cc, which provokes faults on purpose: forgets the last one.
void clear_fault() { sticky = cudaSuccess, last_error = cudaSuccess; }

const unsigned char *warp_share(const void *mine, size_t n, const char *what) {
    curf->warp_what = what;
    Thread &t = curf->t;
    const int p = t.parity;
    t.parity ^= 1;
    memcpy(xbuf[p][t.warp][t.lane], mine, n);
    yield(AT_WARP);
    return &xbuf[p][t.warp][0][0];
}

void trap() {
    yield(TRAPPED);
    __builtin_unreachable();
}

void shared_touch(void *p, size_t bytes) {
    unsigned long long &seen = shared_seen[p];
    if (seen != block_serial) {
        memset(p, 0xff, bytes), seen = block_serial;
        TRACE(shared_array(p, bytes));
    }
}

#ifdef AVGEN_EMU_TRACE
bool trace::device_range(uintptr_t a, uintptr_t *lo, uintptr_t *hi) {
    auto it = allocs.upper_bound(a);
    *hi = it == allocs.end() ? ~(uintptr_t)0 : it->first, *lo = 0;
    if (it == allocs.begin()) return false;
    --it;
    if (a - it->first >= it->second.bytes) {
        *lo = it->first + it->second.bytes;
        return false;
    }
    *lo = it->first, *hi = it->first + it->second.bytes;
    return true;
}
#endif

void misaligned(const void *p, size_t bytes) {
    snprintf(misaligned_why, sizeof misaligned_why, "a %zu-byte vector access at %p, not a multiple of %zu", bytes, p, bytes);
    trap();
}

// Dynamic shared memory a kernel opted in to (cudaFuncSetAttribute), by its function.
std::map<const void *, size_t> &smem_optin() {
    static std::map<const void *, size_t> m;
    return m;
}
constexpr size_t kSmemOptin = 227 * 1024;  // an H100's sharedMemPerBlockOptin

cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> fn,
                   const void *func) {
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (!threads || threads > (unsigned long long)kMaxThreads || block.z > 64 || !grid.x || !grid.y || !grid.z ||
        grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u) {
        fprintf(stderr, "CUDA emulator: kernel %s: invalid launch grid %u,%u,%u block %u,%u,%u\n", name, grid.x, grid.y,
                grid.z, block.x, block.y, block.z);
        return fail(cudaErrorInvalidConfiguration);
    }
    const auto opt = func ? smem_optin().find(func) : smem_optin().end();
    const size_t limit = opt != smem_optin().end() && opt->second > 48 * 1024 ? opt->second : 48 * 1024;
    if (smem > limit) {
        fprintf(stderr, "CUDA emulator: kernel %s: %zu bytes of dynamic shared memory (more than 48 KiB needs the "
                        "kernel's opt-in, cudaFuncSetAttribute, to as much: %zu)\n", name, smem, limit);
        return fail(cudaErrorInvalidValue);
    }
    if (FILE *f = launch_log())
        fprintf(f, "kernel\t%s\t%u,%u,%u\t%u,%u,%u\t%zu\t%d\n", name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem,
                s && s->capturing ? 1 : 0);
    if (dry()) return cudaSuccess;
    if (!stacks_ready()) return fail(cudaErrorMemoryAllocation);
#ifdef AVGEN_EMU_TRACE
    const std::shared_ptr<const void> op = trace::op_submitted();  // (AVGEN_EMU_OPCHECK: whose tensors it may touch)
#endif
    submit(s, [=]() {
        if (sticky != cudaSuccess) return;  // the context is broken, as on the GPU
#ifdef AVGEN_EMU_TRACE
        trace::op_enter(op);
        struct Leave {
            ~Leave() { trace::op_enter(nullptr); }
        } leave;
#endif
        if (!race_check()) {
            run_grid(name, grid, block, smem, fn, false);
            return;
        }
        // AVGEN_EMU_RACECHECK=1: the launch twice from the same device memory, blocks and threads in index
        // order and then in reverse; a kernel whose threads or blocks communicate without a barrier (or read
        // shared memory nobody wrote) leaves different memory behind.
        static std::vector<unsigned char> before, first;  // every allocation back to back (kept: no page faults)
        size_t total = 0;
        for (auto &a : allocs) total += a.second.bytes;
        before.resize(total), first.resize(total);
        auto save = [&](std::vector<unsigned char> &to) {
            size_t at = 0;
            for (auto &a : allocs) memcpy(to.data() + at, (void *)a.first, a.second.bytes), at += a.second.bytes;
        };
        save(before);
        if (!run_grid(name, grid, block, smem, fn, false)) return;
        save(first);
        size_t at = 0;
        for (auto &a : allocs) memcpy((void *)a.first, before.data() + at, a.second.bytes), at += a.second.bytes;
        if (!run_grid(name, grid, block, smem, fn, true)) return;
        at = 0;
        for (auto &a : allocs) {
            const unsigned char *p = (const unsigned char *)a.first, *q = first.data() + at;
            if (memcmp(p, q, a.second.bytes)) {
                size_t i = 0;
                while (p[i] == q[i]) i++;
                kernel_fault("kernel %s: its results depend on the order its threads or blocks run in (a race, or a read "
                             "of shared memory never written): byte %zu of a %zu-byte allocation differs (grid %u,%u,%u "
                             "block %u,%u,%u)", name, i, a.second.bytes, grid.x, grid.y, grid.z, block.x, block.y, block.z);
                return;
            }
            at += a.second.bytes;
        }
    });
    return cudaSuccess;
}

// ------------------------------------------------------------------------------------------ cuBLASLt
namespace {
struct LtDesc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epi;
    const void *bias;
    int32_t bias_type;  // -1: D's type
};
struct LtLayout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
};
int lt_handle_token;

template <class T> cublasStatus_t set_attr(T *dst, const void *buf, size_t size) {
    if (size != sizeof(T) || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(dst, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

float round_bf16(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}
float round_tf32(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) >= 0x7f800000u) return f;
    u = (u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u;
    memcpy(&f, &u, 4);
    return f;
}

// AVGEN_EMU_EXACT_GEMM=1: fp32 operands are not rounded for the fast compute types (a bf16 run then differs
// from fp32 only by the kernels' own bf16 arithmetic: the fused attention, bf16 operands).
bool exact_gemm() {
    static const bool on = env_on("AVGEN_EMU_EXACT_GEMM");
    return on;
}

// An element as float (fp32, or bf16 when h), and a float stored (bf16: rounded to nearest even).
float get(const unsigned char *p, bool h) {
    if (h) {
        unsigned short b;
        memcpy(&b, p, 2);
        return avgen_emu_bf(b);
    }
    float v;
    memcpy(&v, p, 4);
    return v;
}
void put(unsigned char *p, float v, bool h) {
    if (!h) {
        memcpy(p, &v, 4);
        return;
    }
    const float r = round_bf16(v);
    unsigned u;
    memcpy(&u, &r, 4);
    const unsigned short b = (unsigned short)(u >> 16);
    memcpy(p, &b, 2);
}

// op(X) of a layout as a dense [r][c] float matrix (batch b), rounded for the compute type.
bool load(std::vector<float> &out, const LtLayout *L, const void *p, bool trans, int b, cublasComputeType_t ct) {
    const uint64_t R = trans ? L->cols : L->rows, C = trans ? L->rows : L->cols;
    out.resize(R * C);
    const size_t es = L->type == CUDA_R_16BF ? 2 : 4;
    const unsigned char *base = (const unsigned char *)p + (size_t)b * L->stride * es;
    for (uint64_t i = 0; i < R; i++)
        for (uint64_t j = 0; j < C; j++) {
            const uint64_t r = trans ? j : i, c = trans ? i : j;  // element (r, c) of the stored matrix
            const unsigned char *e = base + (r + c * (uint64_t)L->ld) * es;
            float v;
            if (es == 2) {
                unsigned short h;
                memcpy(&h, e, 2);
                v = avgen_emu_bf(h);
            } else {
                memcpy(&v, e, 4);
                if (!exact_gemm() && ct == CUBLAS_COMPUTE_32F_FAST_16BF) v = round_bf16(v);
                if (!exact_gemm() && ct == CUBLAS_COMPUTE_32F_FAST_TF32) v = round_tf32(v);
            }
            out[i * C + j] = v;
        }
    return true;
}
#ifdef AVGEN_EMU_TRACE
// The tracing build's checks of a matmul operand: true (a fault recorded, "cuBLASLt matmul: its A (element r, c of
// batch b): why") when bad(address, bytes, why, size) holds for an element of matrix `what`, every batch.
template <class F> int lt_bad(const LtLayout &L, const void *p, const char *what, F bad) {
    const size_t es = L.type == CUDA_R_16BF ? 2 : 4;
    char why[512];
    for (int b = 0; b < L.batch; b++)
        for (uint64_t c = 0; c < L.cols; c++)
            for (uint64_t r = 0; r < L.rows; r++)
                if (bad((const unsigned char *)p + ((size_t)b * L.stride + r + c * (uint64_t)L.ld) * es, es, why, sizeof why)) {
                    kernel_fault("cuBLASLt matmul: its %s (element %llu, %llu of batch %d): %s", what, (unsigned long long)r,
                                 (unsigned long long)c, b, why);
                    return 1;
                }
    return 0;
}
// AVGEN_EMU_OPCHECK: an element outside the tensors of the op that submitted the matmul
int lt_outside(const LtLayout &L, const void *p, const char *what, bool store) {
    return lt_bad(L, p, what, [store](const void *e, size_t n, char *why, size_t wn) {
        return trace::op_outside(e, n, store, why, wn);
    });
}
// AVGEN_EMU_INITCHECK: an element never written
int lt_unwritten(const LtLayout &L, const void *p, const char *what) { return lt_bad(L, p, what, trace::dev_unwritten); }
#endif
}  // namespace
}  // namespace avgen_emu

using namespace avgen_emu;

extern "C" {

// ------------------------------------------------------------------------------------ runtime calls
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return fail(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, dry() ? "avgen CUDA emulator (CPU; dry run: nothing computed)" : "avgen CUDA emulator (CPU)");
    p->major = 9, p->minor = 0, p->multiProcessorCount = 4, p->totalGlobalMem = total_memory();
    p->sharedMemPerBlock = 48 * 1024, p->sharedMemPerBlockOptin = kSmemOptin, p->maxThreadsPerBlock = kMaxThreads;
    p->warpSize = 32;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *fr, size_t *total) {
    *total = total_memory();
    *fr = total_memory() > allocated ? total_memory() - allocated : 0;
    return cudaSuccess;
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchFailure: return "unspecified launch failure (the emulator printed why)";
    case cudaErrorNotSupported: return "operation not supported (by the CUDA emulator)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "CUDA emulator error";
    }
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaError";
    }
}
cudaError_t cudaGetLastError(void) {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e != cudaSuccess ? e : sticky;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = NULL;
    if (!captures.empty()) return fail(capture_unsupported());
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t rounded = (bytes + 255) & ~(size_t)255;
    const size_t body = (rounded + page - 1) & ~(page - 1);
    if (allocated + rounded > total_memory()) return fail(cudaErrorMemoryAllocation);
    void *m = mmap(NULL, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    mprotect((unsigned char *)m + body, page, PROT_NONE);
    unsigned char *start = (unsigned char *)m + body - rounded;
    if (!dry()) memset(start, 0xff, rounded);
    allocs[(uintptr_t)start] = Alloc{m, body + page, rounded};
    allocated += rounded;
    TRACE(dev_alloc(start, rounded));
    *p = start;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!captures.empty()) return fail(capture_unsupported());
    sync_all();
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) return fail(cudaErrorInvalidValue);
    allocated -= it->second.bytes;
    munmap(it->second.map, it->second.map_bytes);
    TRACE(dev_free(p));
    allocs.erase(it);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) {
    *p = NULL;
    if (!captures.empty()) return fail(capture_unsupported());
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return fail(cudaErrorMemoryAllocation);
    pinned[(uintptr_t)*p] = bytes ? bytes : 1;
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int) { return cudaMallocHost(p, bytes); }
cudaError_t cudaFreeHost(void *p) {
    if (!captures.empty()) return fail(capture_unsupported());
    sync_all();
    pinned.erase((uintptr_t)p);
    free(p);
    return cudaSuccess;
}
// The synchronous copy and set run on the legacy stream, which the backend's streams (cudaStreamNonBlocking) do not
// wait for nor it for them: they run now, whatever those streams have queued.
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    if (!captures.empty()) return fail(capture_unsupported());
    flush();
    if (sticky != cudaSuccess) return sticky;
    log_copy(copy_kind(kind), n, false);
    if (dry()) return cudaSuccess;
    memcpy(dst, src, n);
    TRACE(dev_copied(dst, src, n));
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    // captured: a copy node, which needs host memory that is pinned (read or written when the graph runs)
    if (s && s->capturing && ((kind == cudaMemcpyHostToDevice && !is_pinned(src, n)) ||
                              (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, n))))
        return fail(capture_unsupported());
    log_copy(copy_kind(kind), n, s && s->capturing);
    if (dry()) return cudaSuccess;
    std::function<void()> op = [=]() {
        if (sticky != cudaSuccess) return;
        memcpy(dst, src, n);
        TRACE(dev_copied(dst, src, n));
    };
    if (kind == cudaMemcpyHostToDevice && !(s && (s->capturing || s->lag || !s->queue.empty()))) {
        deferred.push_back(std::move(op));  // done late (flush); behind queued work, when its turn comes
        return cudaSuccess;
    }
    submit(s, std::move(op));
    return cudaSuccess;
}
cudaError_t cudaMemset(void *dst, int v, size_t n) {
    if (!captures.empty()) return fail(capture_unsupported());
    flush();
    if (sticky != cudaSuccess) return sticky;
    log_copy(NULL, n, false);
    if (dry()) return cudaSuccess;
    memset(dst, v, n);
    TRACE(dev_written(dst, n));
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int v, size_t n, cudaStream_t s) {
    log_copy(NULL, n, s && s->capturing);
    if (dry()) return cudaSuccess;
    submit(s, [=]() {
        if (sticky != cudaSuccess) return;
        memset(dst, v, n);
        TRACE(dev_written(dst, n));
    });
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    if (!captures.empty()) return fail(capture_unsupported());
    sync_all();
    return sticky;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    static int created;  // (AVGEN_EMU_LAG_STREAM counts them)
    *s = new CUstream_st();
    (*s)->lag = lags(++created);
    streams.push_back(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s) {  // its work still runs
        flush();
        force([=]() { return s->queue.empty(); });
        for (size_t i = 0; i < streams.size(); i++)
            if (streams[i] == s) streams.erase(streams.begin() + (long)i);
    }
    if (s && s->capturing) {
        delete s->graph;
        for (size_t i = 0; i < captures.size(); i++)
            if (captures[i] == s) captures.erase(captures.begin() + (long)i);
    }
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (!captures.empty()) return fail(capture_unsupported());
    flush();
    if (s) force([=]() { return s->queue.empty(); });  // (others' work only as far as this stream waits for it)
    return sticky;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
    // an event recorded outside the capture: not allowed while capturing (cudaEventWaitExternal is not emulated)
    if (s && s->capturing) return fail(capture_unsupported());
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    if (!s) return fail(cudaErrorNotSupported);  // (the legacy stream: not used, not emulated)
    enqueue(s, EmuWork{std::function<void()>(), e, e->submitted});  // the latest record asked for before it
    return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (!s || s->capturing) return fail(cudaErrorInvalidValue);
    flush();
    s->capturing = 1, s->invalidated = 0;
    s->graph = new CUgraph_st();
    captures.push_back(s);
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    if (!s || !s->capturing) return fail(cudaErrorInvalidValue);
    s->capturing = 0;
    for (size_t i = 0; i < captures.size(); i++)
        if (captures[i] == s) captures.erase(captures.begin() + (long)i);
    *g = NULL;
    if (s->invalidated) {
        delete s->graph;
        s->graph = NULL;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *g = s->graph;
    s->graph = NULL;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    *e = new CUgraphExec_st();
    (*e)->ops = g->ops;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    for (auto &op : e->ops) submit(s, op);
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st();
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    // queued work may still record or wait for it (CUDA allows that): kept until the process ends
    static std::vector<std::unique_ptr<CUevent_st>> destroyed;
    if (e) destroyed.emplace_back(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (s && s->capturing) {  // a node of the graph: no record number (nothing waits for it)
        submit(s, [=]() { e->t = now(), e->recorded = 1; });
        return cudaSuccess;
    }
    const long long n = ++e->submitted;
    submit(s, [=]() {
        e->t = now(), e->recorded = 1;
        if (e->done < n) e->done = n;
    });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!captures.empty()) return fail(capture_unsupported());
    flush();
    if (e) {
        const long long target = e->submitted;
        force([=]() { return e->done >= target; });
    }
    return sticky;
}  // (an event never recorded: success, as CUDA's)
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) {
    *st = s && s->capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a->recorded || !b->recorded) return fail(cudaErrorInvalidResourceHandle);
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (!func) return fail(cudaErrorInvalidDeviceFunction);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorNotSupported);
    if (value < 0 || (size_t)value > kSmemOptin) return fail(cudaErrorInvalidValue);
    smem_optin()[func] = (size_t)value;
    return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *) {
    memset(a, 0, sizeof *a);
    a->binaryVersion = 90, a->ptxVersion = 90, a->maxThreadsPerBlock = kMaxThreads;
    return cudaSuccess;
}
// The NVRTC path: not emulated (the backend refuses --kernels nvrtc before it gets here).
cudaError_t cudaLaunchKernel(const void *, dim3, dim3, void **, size_t, cudaStream_t) { return fail(cudaErrorNotSupported); }
cudaError_t cudaLibraryLoadData(cudaLibrary_t *, const void *, cudaJitOption *, void **, unsigned int, cudaLibraryOption *,
                                void **, unsigned int) {
    return fail(cudaErrorNotSupported);
}
cudaError_t cudaLibraryUnload(cudaLibrary_t) { return cudaSuccess; }
cudaError_t cudaLibraryGetKernel(cudaKernel_t *, cudaLibrary_t, const char *) { return fail(cudaErrorNotSupported); }
cudaError_t cudaFuncGetParamInfo(const void *, size_t, size_t *, size_t *) { return fail(cudaErrorNotSupported); }

// -------------------------------------------------------------------------------------- cuBLASLt
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = (cublasLtHandle_t)&lt_handle_token;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t ct, cudaDataType_t scale) {
    if (ct != CUBLAS_COMPUTE_32F && ct != CUBLAS_COMPUTE_32F_FAST_16BF && ct != CUBLAS_COMPUTE_32F_FAST_TF32)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    LtDesc *x = new LtDesc();
    x->compute = ct, x->scale = scale, x->ta = x->tb = CUBLAS_OP_N, x->epi = CUBLASLT_EPILOGUE_DEFAULT, x->bias_type = -1;
    *d = (cublasLtMatmulDesc_t)x;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete (LtDesc *)d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf,
                                              size_t size) {
    LtDesc *x = (LtDesc *)d;
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set_attr(&x->ta, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set_attr(&x->tb, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        cublasLtEpilogue_t e;
        const cublasStatus_t st = set_attr(&e, buf, size);
        if (st) return st;
        if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
        x->epi = e;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_attr(&x->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set_attr(&x->bias_type, buf, size);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType t, uint64_t rows, uint64_t cols, int64_t ld) {
    if (t != CUDA_R_32F && t != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (ld < (int64_t)rows || ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
    LtLayout *x = new LtLayout();
    x->type = t, x->rows = rows, x->cols = cols, x->ld = ld, x->batch = 1, x->stride = 0;
    *l = (cublasLtMatrixLayout_t)x;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete (LtLayout *)l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const void *buf,
                                                size_t size) {
    LtLayout *x = (LtLayout *)l;
    switch (a) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set_attr(&x->batch, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return set_attr(&x->stride, buf, size);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = (cublasLtMatmulPreference_t) new int(0);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete (int *)p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void *buf, size_t) {
    return buf ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

static int32_t lt_bias_type(const LtDesc *x, const LtLayout *dd) { return x->bias_type >= 0 ? x->bias_type : (int32_t)dd->type; }

// The shapes of D = op(A) op(B) (+ C): m, n, k, or false when the layouts disagree.
static bool lt_shape(const LtDesc *x, const LtLayout *a, const LtLayout *b, const LtLayout *c, const LtLayout *dd,
                     uint64_t *m, uint64_t *n, uint64_t *k) {
    *m = x->ta == CUBLAS_OP_N ? a->rows : a->cols;
    *k = x->ta == CUBLAS_OP_N ? a->cols : a->rows;
    const uint64_t kb = x->tb == CUBLAS_OP_N ? b->rows : b->cols;
    *n = x->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (kb != *k || c->rows != *m || c->cols != *n || dd->rows != *m || dd->cols != *n) return false;
    if (a->type != b->type || c->type != dd->type) return false;
    if (dd->type != CUDA_R_32F && !(dd->type == CUDA_R_16BF && a->type == CUDA_R_16BF)) return false;
    if (a->type == CUDA_R_16BF && x->compute != CUBLAS_COMPUTE_32F) return false;
    if (a->batch != b->batch || a->batch != c->batch || c->batch != dd->batch || a->batch < 1) return false;
    if (x->epi == CUBLASLT_EPILOGUE_BIAS) {
        if (a->batch > 1) return false;
        const int32_t bt = lt_bias_type(x, dd);
        if (bt != CUDA_R_32F && !(bt == CUDA_R_16BF && dd->type == CUDA_R_16BF)) return false;
        // AVGEN_EMU_BIAS16_ONLY=1: as a cuBLASLt without fp32 biases for bf16 results (the backend's fallback)
        static const bool bias16_only = env_on("AVGEN_EMU_BIAS16_ONLY");
        if (bt == CUDA_R_32F && dd->type == CUDA_R_16BF && bias16_only) return false;
    }
    return true;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
                                              cublasLtMatmulPreference_t, int req, cublasLtMatmulHeuristicResult_t *res,
                                              int *count) {
    uint64_t m, n, k;
    *count = 0;
    if (req < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (!lt_shape((const LtDesc *)d, (const LtLayout *)a, (const LtLayout *)b, (const LtLayout *)c, (const LtLayout *)dd, &m,
                  &n, &k))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    // AVGEN_EMU_ALGOS=N: N candidates (all the same arithmetic here), so the backend's choice among them runs
    static const int algos = getenv("AVGEN_EMU_ALGOS") ? atoi(getenv("AVGEN_EMU_ALGOS")) : 1;
    const int na = algos < 1 ? 1 : algos < req ? algos : req;
    for (int i = 0; i < na; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].algo.data[0] = (uint64_t)i;
        res[i].state = CUBLAS_STATUS_SUCCESS;
        res[i].wavesCount = 1.0f;
    }
    *count = na;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t s) {
    const LtDesc x = *(const LtDesc *)desc;  // the call's values (the descriptor may change afterwards)
    const LtLayout a = *(const LtLayout *)la, b = *(const LtLayout *)lb, c = *(const LtLayout *)lc, dd = *(const LtLayout *)ld;
    uint64_t m, n, k;
    if (!lt_shape(&x, &a, &b, &c, &dd, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    if (FILE *f = launch_log()) {
        auto ty = [](cudaDataType_t t) { return t == CUDA_R_16BF ? "bf16" : "fp32"; };
        fprintf(f, "gemm\tcublasLt %s%s A %s B %s C %s D %s beta %g%s\t%llu,%llu,%llu\t%d\t0\t%d\n", x.ta == CUBLAS_OP_N ? "N" : "T",
                x.tb == CUBLAS_OP_N ? "N" : "T", ty(a.type), ty(b.type), ty(c.type), ty(dd.type), (double)be,
                x.epi == CUBLASLT_EPILOGUE_BIAS ? " bias" : "", (unsigned long long)m, (unsigned long long)n,
                (unsigned long long)k, a.batch, s && s->capturing ? 1 : 0);
    }
    if (dry()) return CUBLAS_STATUS_SUCCESS;
#ifdef AVGEN_EMU_TRACE
    const std::shared_ptr<const void> op = trace::op_submitted();
#endif
    submit(s, [=]() {
        if (sticky != cudaSuccess) return;
#ifdef AVGEN_EMU_TRACE
        trace::op_enter(op);
        struct Leave {
            ~Leave() { trace::op_enter(nullptr); }
        } leave;
        // AVGEN_EMU_OPCHECK: every element it reads and writes inside the op's tensors
        if (trace::on() && lt_outside(a, A, "A", false) + lt_outside(b, B, "B", false) +
                                   (be != 0.0f && lt_outside(c, C, "C", false)) + lt_outside(dd, D, "D", true))
            return;
        // AVGEN_EMU_INITCHECK: what the matmul reads must have been written (C only when beta is not 0)
        if (trace::on() && lt_unwritten(a, A, "A") + lt_unwritten(b, B, "B") + (be != 0.0f && lt_unwritten(c, C, "C")))
            return;
        if (trace::on() && x.epi == CUBLASLT_EPILOGUE_BIAS) {
            char why[256];
            if (trace::dev_unwritten(x.bias, m * (lt_bias_type(&x, &dd) == CUDA_R_16BF ? 2 : 4), why, sizeof why))
                return kernel_fault("cuBLASLt matmul: its bias %s", why);
        }
#endif
        std::vector<float> oa, ob;
        for (int bi = 0; bi < a.batch; bi++) {
            load(oa, &a, A, x.ta != CUBLAS_OP_N, bi, x.compute);  // [m][k]
            load(ob, &b, B, x.tb == CUBLAS_OP_N, bi, x.compute);  // op(B)^T: [n][k]
            const bool h = dd.type == CUDA_R_16BF, bias16 = lt_bias_type(&x, &dd) == CUDA_R_16BF;
            const size_t es = h ? 2 : 4;
            const unsigned char *cb = (const unsigned char *)C + (size_t)bi * c.stride * es;
            unsigned char *db = (unsigned char *)D + (size_t)bi * dd.stride * es;
            for (uint64_t j = 0; j < n; j++)
                for (uint64_t i = 0; i < m; i++) {
                    double acc = 0;
                    const float *ra = &oa[i * k], *rb = &ob[j * k];
                    for (uint64_t q = 0; q < k; q++) acc += (double)ra[q] * (double)rb[q];
                    float v = (float)((double)al * acc);
                    if (be != 0.0f) v = v + be * get(cb + (i + j * c.ld) * es, h);
                    if (x.epi == CUBLASLT_EPILOGUE_BIAS) v += get((const unsigned char *)x.bias + i * (bias16 ? 2 : 4), bias16);
                    put(db + (i + j * dd.ld) * es, v, h);
                    TRACE(dev_written(db + (i + j * dd.ld) * es, es));
                }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
