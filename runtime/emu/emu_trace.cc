// runtime/emu/emu_trace.cc: the CUDA emulator's tracing build (docs/emulator.md, "The tracing build"). The
// backend's kernels are compiled with -fsanitize=thread: the compiler calls __tsan_readN / __tsan_writeN before
// every load and store. No ThreadSanitizer runtime is linked; those hooks are defined here, and with
//   AVGEN_EMU_MEMPROFILE=FILE  each kernel's device-memory and shared-memory traffic is counted as a GPU would
//                              issue it (the lanes of a warp at the same instruction are one request: 32-byte
//                              sectors a global request touches, bank-conflict wavefronts of a shared one) and
//                              written to FILE at exit, one line a kernel;
//   AVGEN_EMU_RACES=1          every access of shared and device memory is checked against the earlier ones of
//                              the launch: two threads of a block at one address (one of them writing) with no
//                              __syncthreads between them (lanes of one warp: nor a warp-synchronous
//                              instruction), or two blocks, is a fault naming both source lines.
// Neither says anything of time; the first says how many bytes each request moves, the second is what
// compute-sanitizer's racecheck reports, for every interleaving at once (docs/emulator.md says what it misses).
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cuda_emu.h"

namespace avgen_emu {
namespace trace {
namespace {

const char *profile_path;                // AVGEN_EMU_MEMPROFILE
bool races;                              // AVGEN_EMU_RACES=1
bool initcheck;                          // AVGEN_EMU_INITCHECK=1
bool opcheck;                            // AVGEN_EMU_OPCHECK=1
bool active;                             // a launch is running
uintptr_t smem_lo, smem_hi;              // the launch's dynamic shared memory
std::map<uintptr_t, size_t> shared_arr;  // the static shared arrays seen (they stay where they are)

enum { GLOBAL = 1, SHARED = 2 };

// ------------------------------------------------------------------------------------------- profile
// One thread's access: the lanes of a warp that reach the same instruction (pc) for the same time (k) are one
// request, as the warp issues it.
struct Rec {
    uintptr_t pc, addr;
    uint32_t k;
    uint16_t warp, size;
    uint8_t lane, store, space;
};
std::vector<Rec> recs;
struct PerThread {
    std::unordered_map<uintptr_t, uint32_t> occ;  // times each instruction was reached in this block
    uintptr_t vlo, vhi;                           // the last vector access: its element accesses are not counted
    bool vstore;
};
PerThread threads[1024];
int nthreads;

struct PcStat {
    uint64_t req, units, ideal;  // requests; sectors (global) or wavefronts (shared); the fewest they could be
    int space, store;
};
struct KStat {
    uint64_t launches;
    uint64_t req[2], sect[2], ideal[2], bytes[2], unique[2];  // global loads [0] and stores [1]
    uint64_t sreq, swave, sideal;                             // shared
    std::unordered_map<uintptr_t, PcStat> pcs;
};
std::map<std::string, KStat> stats;
KStat *ks;
std::unordered_set<uintptr_t> touched[2];  // the launch's sectors read and written

void tally(const Rec *r, size_t n) {
    const int store = r->store;
    PcStat &ps = ks->pcs[r->pc];
    ps.space = r->space, ps.store = store;
    ps.req++;
    if (r->space == GLOBAL) {
        // the bytes the lanes ask for (each once: lanes reading the same address share it) and the 32-byte
        // sectors they lie in
        std::pair<uintptr_t, uintptr_t> iv[32];
        const size_t m = n < 32 ? n : 32;
        for (size_t i = 0; i < m; i++) iv[i] = {r[i].addr, r[i].addr + r[i].size};
        std::sort(iv, iv + m);
        uint64_t bytes = 0, ns = 0;
        uintptr_t hi = 0, last = ~(uintptr_t)0;
        for (size_t i = 0; i < m; i++) {
            const uintptr_t lo = iv[i].first > hi ? iv[i].first : hi;
            if (iv[i].second <= lo) continue;
            bytes += iv[i].second - lo, hi = iv[i].second;
            for (uintptr_t sct = lo >> 5; sct <= (iv[i].second - 1) >> 5; sct++)
                if (sct != last) ns++, last = sct, touched[store].insert(sct);
        }
        ks->req[store]++, ks->sect[store] += ns, ks->ideal[store] += (bytes + 31) / 32, ks->bytes[store] += bytes;
        ps.units += ns, ps.ideal += (bytes + 31) / 32;
        return;
    }
    // shared: 32 banks of 4 bytes; a request of s-byte accesses goes in phases of 128 / s lanes (every lane at
    // once for s <= 4), each phase taking as many wavefronts as the most distinct words any bank holds
    const int size = r->size, per = size <= 4 ? 32 : 128 / size;
    uint64_t waves = 0, ideal = 0;
    for (int phase = 0; phase < 32 / per; phase++) {
        uintptr_t words[32][32];
        int nw[32] = {0}, most = 0;
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            if (r[i].lane / per != phase) continue;
            any = true;
            for (uintptr_t w = r[i].addr >> 2; w <= (r[i].addr + r[i].size - 1) >> 2; w++) {
                const int b = (int)(w & 31);
                bool seen = false;
                for (int j = 0; j < nw[b] && !seen; j++) seen = words[b][j] == w;
                if (!seen && nw[b] < 32) words[b][nw[b]++] = w;
                if (nw[b] > most) most = nw[b];
            }
        }
        waves += most, ideal += any;
    }
    ks->sreq++, ks->swave += waves, ks->sideal += ideal;
    ps.units += waves, ps.ideal += ideal;
}

// The requests recorded so far (at a barrier, where every thread of the block has reached the same point, and at
// the block's end). The records are put in thread order first (a counting sort, each thread's in the order it
// made them). Where every lane of a warp that accessed memory made the same sequence of (instruction, time), as a
// warp without divergence does, the i-th records of its lanes are one request; otherwise the warp's records are
// sorted by (instruction, time, lane).
std::vector<Rec> by_thread;
std::vector<uint32_t> thread_at;
void flush() {
    if (recs.empty()) return;
    const int nw = (nthreads + 31) / 32;
    thread_at.assign((size_t)nw * 32 + 1, 0);
    for (const Rec &r : recs) thread_at[r.warp * 32 + r.lane + 1]++;
    for (size_t i = 1; i < thread_at.size(); i++) thread_at[i] += thread_at[i - 1];
    by_thread.resize(recs.size());
    for (const Rec &r : recs) by_thread[thread_at[r.warp * 32 + r.lane]++] = r;  // (thread_at: now each one's end)
    for (size_t i = thread_at.size() - 1; i > 0; i--) thread_at[i] = thread_at[i - 1];
    thread_at[0] = 0;
    for (int w = 0; w < nw; w++) {
        const uint32_t *b = &thread_at[(size_t)w * 32];  // lane l's records: by_thread[b[l] .. b[l + 1])
        int lanes[32], nl = 0;
        for (int l = 0; l < 32; l++)
            if (b[l + 1] > b[l]) lanes[nl++] = l;
        if (!nl) continue;
        const uint32_t len = b[lanes[0] + 1] - b[lanes[0]];
        bool same_path = true;
        for (int i = 1; i < nl && same_path; i++) {
            const Rec *x = &by_thread[b[lanes[0]]], *y = &by_thread[b[lanes[i]]];
            same_path = b[lanes[i] + 1] - b[lanes[i]] == len;
            for (uint32_t j = 0; j < len && same_path; j++) same_path = x[j].pc == y[j].pc && x[j].k == y[j].k;
        }
        if (same_path) {
            Rec req[32];
            for (uint32_t j = 0; j < len; j++) {
                for (int i = 0; i < nl; i++) req[i] = by_thread[b[lanes[i]] + j];
                tally(req, nl);
            }
            continue;
        }
        Rec *lo = &by_thread[b[0]], *hi = &by_thread[b[32]];
        std::sort(lo, hi, [](const Rec &x, const Rec &y) {
            if (x.pc != y.pc) return x.pc < y.pc;
            if (x.k != y.k) return x.k < y.k;
            return x.lane < y.lane;
        });
        for (Rec *i = lo; i < hi;) {
            Rec *j = i + 1;
            while (j < hi && j->pc == i->pc && j->k == i->k) j++;
            tally(i, j - i);
            i = j;
        }
    }
    recs.clear();
}

// ------------------------------------------------------------------------------------------- races
// Each 2-byte granule of memory a launch touches remembers its last write and two of the reads since it; an
// access by another thread of the block in the same barrier interval (and, for lanes of one warp, the same
// interval between warp-synchronous instructions), or by another block, one of the two a write, is a race.
unsigned long long block_no;  // the running block (its linear index)
uint32_t bar;                 // barriers the block has passed
uint32_t wsync[32];           // warp-synchronous instructions each warp has passed
struct Acc {
    uintptr_t pc;
    unsigned long long block;
    uint32_t bar, wsync;
    int tid;  // -1: none
};
struct Shadow {
    Acc w, r1, r2;
};
// The granules' shadows, in pages of 512 granules taken as first touched (from a pool kept across launches: a
// clear makes no call to free), the last page used looked up without a hash.
class ShadowMap {
    static constexpr unsigned kBits = 9, kPage = 1u << kBits;
    std::unordered_map<uintptr_t, Shadow *> pages_;
    std::vector<std::unique_ptr<Shadow[]>> pool_;
    size_t used_ = 0;
    uintptr_t last_key_ = ~(uintptr_t)0;
    Shadow *last_ = nullptr;

   public:
    Shadow &at(uintptr_t g) {
        const uintptr_t key = g >> kBits;
        if (key != last_key_) {
            auto it = pages_.find(key);
            if (it == pages_.end()) {
                if (used_ == pool_.size()) pool_.emplace_back(new Shadow[kPage]);
                Shadow *pg = pool_[used_++].get();
                const Acc none{0, 0, 0, 0, -1};
                for (unsigned i = 0; i < kPage; i++) pg[i] = Shadow{none, none, none};
                it = pages_.emplace(key, pg).first;
            }
            last_key_ = key, last_ = it->second;
        }
        return last_[g & (kPage - 1)];
    }
    void clear() {
        pages_.clear();
        used_ = 0, last_key_ = ~(uintptr_t)0, last_ = nullptr;
    }
};
ShadowMap shadow_global, shadow_shared;  // by granule; per launch, per block
char fault_why[1024];
bool faulted;

bool conflict(const Acc &a, const Acc &b) {
    if (a.tid < 0) return false;
    if (a.block != b.block) return true;
    if (a.tid == b.tid || a.bar != b.bar) return false;
    return a.tid / 32 != b.tid / 32 || a.wsync == b.wsync;
}
bool same(const Acc &a, const Acc &b) {
    return a.tid == b.tid && a.block == b.block && a.bar == b.bar && a.wsync == b.wsync;
}

std::map<uintptr_t, std::string> lines_of(const std::vector<uintptr_t> &pcs);

void report(const char *kind, bool shared, uintptr_t a, const Acc &x, const Acc &y) {
    faulted = true;
    std::map<uintptr_t, std::string> w = lines_of({x.pc, y.pc});
    const std::string wx = w[x.pc], wy = w[y.pc];
    if (x.block != y.block)
        snprintf(fault_why, sizeof fault_why,
                 "race on %s memory at %#lx: %s by block %llu thread %d at %s and block %llu "
                 "thread %d at %s (blocks of one launch are not ordered)",
                 shared ? "shared" : "device", (unsigned long)a, kind, x.block, x.tid, wx.c_str(), y.block, y.tid,
                 wy.c_str());
    else
        snprintf(fault_why, sizeof fault_why,
                 "race on %s memory at %#lx: %s by thread %d at %s and thread %d at %s with no "
                 "%s between them",
                 shared ? "shared" : "device", (unsigned long)a, kind, x.tid, wx.c_str(), y.tid, wy.c_str(),
                 x.tid / 32 == y.tid / 32 ? "__syncthreads or warp-synchronous instruction" : "__syncthreads");
}

void check(uintptr_t a, size_t n, bool store, bool shared, const Acc &me) {
    if (faulted) return;
    auto &m = shared ? shadow_shared : shadow_global;
    for (uintptr_t g = a >> 1; g <= (a + n - 1) >> 1; g++) {
        Shadow &s = m.at(g);
        if (conflict(s.w, me)) return report(store ? "written twice" : "written, then read", shared, g << 1, s.w, me);
        if (store) {
            if (conflict(s.r1, me)) return report("read, then written", shared, g << 1, s.r1, me);
            if (conflict(s.r2, me)) return report("read, then written", shared, g << 1, s.r2, me);
            s.w = me, s.r1.tid = s.r2.tid = -1;
        } else if (s.r1.tid < 0 || same(s.r1, me)) {
            s.r1 = me;
        } else if (!same(s.r2, me)) {
            s.r2 = me;
        }
    }
}

// The region of m (keyed by its start; len(value) its length in bytes) that contains a, or m.end().
template <class M, class F>
auto containing(M &m, uintptr_t a, F len) -> decltype(m.begin()) {
    auto it = m.upper_bound(a);
    if (it == m.begin()) return m.end();
    --it;
    return a - it->first < len(it->second) ? it : m.end();
}

// The region the last lookup of each kind found, tried before the map (most accesses fall where the last one
// did). Each is forgotten where its map can change: a device allocation made or freed, an arena registered or gone,
// a static shared array registered (at its first use in a block), a region of init_bits set up or erased; and, but
// for bits_hit, at each launch's start. none_hit, the gap around an access that holds neither device memory nor a
// static shared array (a thread's stack), goes with either of those.
struct Hit {
    uintptr_t lo = 0, hi = 0;
    bool has(uintptr_t a) const { return a >= lo && a < hi; }
    void forget() { lo = hi = 0; }
};
Hit dev_hit, shared_hit, arena_hit, bits_hit;
Hit none_hit;  // neither device memory nor a static shared array (a thread's stack: its local arrays)

// ------------------------------------------------------------------------------------------- initcheck
// A bit a byte: written since the allocation (device memory: by a kernel, a copy, a set, a cuBLASLt result) or
// since the block began (shared memory). Keyed by the region's start: an allocation, the dynamic shared memory,
// a static shared array.
struct Region {
    size_t bytes;
    std::vector<uint8_t> bits;
};
std::map<uintptr_t, Region> init_bits;
Region *bits_hit_of;  // (the region of bits_hit)
Region *bits_of(uintptr_t a, uintptr_t *start) {
    if (bits_hit.has(a)) {
        *start = bits_hit.lo;
        return bits_hit_of;
    }
    auto it = containing(init_bits, a, [](const Region &r) { return r.bytes; });
    if (it == init_bits.end()) return nullptr;
    bits_hit.lo = it->first, bits_hit.hi = it->first + it->second.bytes, bits_hit_of = &it->second;
    *start = it->first;
    return &it->second;
}
void set_bits(uintptr_t a, size_t n) {
    uintptr_t s;
    Region *r = bits_of(a, &s);
    if (!r) return;
    for (size_t i = a - s, e = i + n < r->bytes ? i + n : r->bytes; i < e; i++) r->bits[i >> 3] |= 1 << (i & 7);
}
// The first of n bytes at a never written (the offset in its region in *off, the region's size in *size), or false.
bool unwritten(uintptr_t a, size_t n, size_t *off, size_t *size) {
    uintptr_t s;
    Region *r = bits_of(a, &s);
    if (!r) return false;
    for (size_t i = a - s; i < a - s + n && i < r->bytes; i++)
        if (!(r->bits[i >> 3] >> (i & 7) & 1)) {
            *off = i, *size = r->bytes;
            return true;
        }
    return false;
}
void init_region(uintptr_t a, size_t bytes) {
    Region &r = init_bits[a];
    r.bytes = bytes;
    r.bits.assign((bytes + 7) / 8, 0);
    bits_hit.forget();
}
void drop_region(uintptr_t a) {
    init_bits.erase(a);
    bits_hit.forget();
}

void report_unwritten(bool shared, size_t n, size_t off, size_t size, int tid, uintptr_t pc) {
    faulted = true;
    std::map<uintptr_t, std::string> w = lines_of({pc});
    snprintf(fault_why, sizeof fault_why, "%s: byte %zu of %s %zu-byte %s, read (%zu bytes) by thread %d at %s",
             shared ? "reads shared memory its block never wrote" : "reads device memory never written", off,
             shared ? "its" : "a", size, shared ? "region" : "allocation", n, tid, w[pc].c_str());
}

// ------------------------------------------------------------------------------------------- opcheck
// The backend's arenas (where its tensors lie side by side), its tensors by name, and for the op whose work is
// running (captured when the work was submitted: a graph replays it later) the ranges it may touch.
std::map<uintptr_t, size_t> arenas;
struct Named {
    uintptr_t lo, hi;
    std::string name;
};
std::vector<Named> tensor_names;       // (tensors of the packed activation arena share bytes, at different times)
size_t as_len(size_t n) { return n; }  // (a map whose value is the length)
struct OpCtx {
    std::string name;
    std::vector<std::pair<uintptr_t, uintptr_t>> allow;  // [lo, hi), sorted, merged
};
std::shared_ptr<const OpCtx> op_current;  // the op being submitted (the backend's op_begin .. op_end)
const OpCtx *op_running;                  // the op of the work running now

// Where a is (only for a fault's sentence: a walk of every tensor): "byte X of tensor T, not one of its tensors"
// (with every tensor placed at that byte, "T or U"), or "byte X of a Y-byte arena, in no tensor".
std::string place(uintptr_t a) {
    std::string names;
    uintptr_t lo = 0;
    for (const Named &t : tensor_names)
        if (a >= t.lo && a < t.hi) names += (names.empty() ? "" : " or ") + t.name, lo = t.lo;
    char buf[512];
    if (!names.empty()) {
        snprintf(buf, sizeof buf, "byte %zu of tensor %s, not one of its tensors", (size_t)(a - lo), names.c_str());
        return buf;
    }
    auto r = containing(arenas, a, as_len);
    snprintf(buf, sizeof buf, "byte %zu of a %zu-byte arena, in no tensor", (size_t)(a - r->first), r->second);
    return buf;
}
// True when the running op may not touch [a, a + n): inside an arena, outside every range of the op.
bool outside_op(uintptr_t a, size_t n) {
    if (!op_running) return false;
    if (!arena_hit.has(a)) {
        auto r = containing(arenas, a, as_len);
        if (r == arenas.end()) return false;
        arena_hit.lo = r->first, arena_hit.hi = r->first + r->second;
    }
    const auto &v = op_running->allow;
    auto it = std::upper_bound(v.begin(), v.end(), std::make_pair(a, ~(uintptr_t)0));
    if (it == v.begin()) return true;
    --it;
    return !(a >= it->first && a + n <= it->second);
}

// ------------------------------------------------------------------------------------------- hooks
int space_of(uintptr_t a) {
    if (a >= smem_lo && a < smem_hi) return SHARED;
    if (dev_hit.has(a)) return GLOBAL;
    if (shared_hit.has(a)) return SHARED;
    if (none_hit.has(a)) return 0;
    // the static shared array holding a, or the gap between two around it
    auto sa = shared_arr.upper_bound(a);
    uintptr_t lo = 0, hi = sa == shared_arr.end() ? ~(uintptr_t)0 : sa->first;
    if (sa != shared_arr.begin()) {
        --sa;
        if (a - sa->first < sa->second) {
            shared_hit.lo = sa->first, shared_hit.hi = sa->first + sa->second;
            return SHARED;
        }
        lo = sa->first + sa->second;
    }
    uintptr_t dlo, dhi;
    if (device_range(a, &dlo, &dhi)) {
        dev_hit.lo = dlo, dev_hit.hi = dhi;
        return GLOBAL;
    }
    none_hit.lo = lo > dlo ? lo : dlo, none_hit.hi = hi < dhi ? hi : dhi;
    return 0;
}

void access(const void *p, size_t n, bool store, uintptr_t pc, bool vector) {
    if (!active || !cur) return;
    const uintptr_t a = (uintptr_t)p;
    const int space = space_of(a);
    if (!space) return;  // the thread's own stack (registers and local memory), the emulator's, the host's
    const int tid = cur->warp * 32 + cur->lane;
    PerThread &t = threads[tid];
    if (vector) {
        t.vlo = a, t.vhi = a + n, t.vstore = store;
    } else if (a >= t.vlo && a + n <= t.vhi && store == t.vstore) {
        return;  // an element of the vector access just recorded
    }
    if (races) check(a, n, store, space == SHARED, Acc{pc, block_no, bar, wsync[cur->warp], tid});
    if (opcheck && !faulted && outside_op(a, n)) {
        faulted = true;
        std::map<uintptr_t, std::string> w = lines_of({pc});
        snprintf(fault_why, sizeof fault_why, "op %s %s %s (%zu bytes, thread %d at %s)", op_running->name.c_str(),
                 store ? "writes" : "reads", place(a).c_str(), n, tid, w[pc].c_str());
    }
    if (initcheck && !faulted) {
        size_t off, size;
        if (store)
            set_bits(a, n);
        else if (unwritten(a, n, &off, &size))
            report_unwritten(space == SHARED, n, off, size, tid, pc);
    }
    if (profile_path)
        recs.push_back(Rec{pc, a, t.occ[pc]++, (uint16_t)cur->warp, (uint16_t)(n < 65535 ? n : 65535),
                           (uint8_t)cur->lane, store, (uint8_t)space});
}

// The source lines of instructions: one addr2line call an object, with the inlining chain, compressed to the
// innermost line and the one it is inlined at ("rt_cuda_kernels.cuh:47 < 871": a vld inlined at line 871).
std::map<uintptr_t, std::string> lines_of(const std::vector<uintptr_t> &pcs) {
    std::map<uintptr_t, std::string> out;
    std::map<std::string, std::vector<std::pair<uintptr_t, uintptr_t>>> by_obj;  // object -> (offset, pc)
    for (uintptr_t pc : pcs) {
        Dl_info di;
        char buf[64];
        if (!dladdr((void *)pc, &di) || !di.dli_fname) {
            snprintf(buf, sizeof buf, "%#lx", (unsigned long)pc);
            out[pc] = buf;
            continue;
        }
        by_obj[strchr(di.dli_fname, '/') ? di.dli_fname : "/proc/self/exe"].push_back(
            {pc - 1 - (uintptr_t)di.dli_fbase, pc});
    }
    for (auto &o : by_obj) {
        std::string cmd = "addr2line -a -i -e '" + o.first + "'";
        for (auto &e : o.second) {
            char buf[32];
            snprintf(buf, sizeof buf, " %#lx", (unsigned long)e.first);
            cmd += buf;
        }
        cmd += " 2>/dev/null";
        std::map<uintptr_t, std::vector<std::string>> frames;
        if (FILE *f = popen(cmd.c_str(), "r")) {
            char line[4096];
            uintptr_t at = 0;
            while (fgets(line, sizeof line, f)) {
                line[strcspn(line, " \n")] = 0;
                if (!strncmp(line, "0x", 2)) {
                    at = (uintptr_t)strtoull(line, NULL, 16);
                } else if (line[0] != '?') {
                    const char *r = strstr(line, "/runtime/");
                    if (char *up = strstr(line, "/emu/../"))
                        memmove(up, up + 7, strlen(up + 7) + 1);  // runtime/emu/../x: runtime/x
                    frames[at].push_back(r ? r + 1 : strrchr(line, '/') ? strrchr(line, '/') + 1 : line);
                }
            }
            pclose(f);
        }
        for (auto &e : o.second) {
            const auto &fr = frames[e.first];
            std::string w;
            if (fr.empty()) {
                char buf[64];
                snprintf(buf, sizeof buf, "+%#lx", (unsigned long)e.first);
                w = o.first.substr(o.first.rfind('/') + 1) + buf;
            } else {
                w = fr[0];
                if (fr.size() > 1) {  // the line it is inlined at, without the file when it is the same
                    const size_t c0 = fr[0].rfind(':'), c1 = fr[1].rfind(':');
                    w += " < " + (fr[0].compare(0, c0, fr[1], 0, c1) == 0 ? fr[1].substr(c1 + 1) : fr[1]);
                }
            }
            out[e.second] = w;
        }
    }
    return out;
}

void write_profile() {
    const std::string lpath = std::string(profile_path) + ".lines";
    FILE *f = fopen(profile_path, "w"), *fl = fopen(lpath.c_str(), "w");
    if (!f || !fl) {
        fprintf(stderr, "CUDA emulator: cannot write the memory profile %s\n", f ? lpath.c_str() : profile_path);
        if (f) fclose(f);
        if (fl) fclose(fl);
        return;
    }
    std::vector<uintptr_t> pcs;
    for (auto &e : stats)
        for (auto &p : e.second.pcs) pcs.push_back(p.first);
    std::map<uintptr_t, std::string> where_pc = lines_of(pcs);
    fprintf(f,
            "kernel\tlaunches\tload_requests\tload_sectors\tload_ideal_sectors\tload_bytes\tstore_requests\t"
            "store_sectors\tstore_ideal_sectors\tstore_bytes\tunique_load_bytes\tunique_store_bytes\tshared_requests\t"
            "shared_wavefronts\tshared_ideal_wavefronts\n");
    fprintf(fl, "kernel\tline\tspace\taccess\trequests\tsectors_or_wavefronts\tideal\texcess\n");
    for (auto &e : stats) {
        const KStat &k = e.second;
        fprintf(f, "%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\n",
                e.first.c_str(), (unsigned long long)k.launches, (unsigned long long)k.req[0],
                (unsigned long long)k.sect[0], (unsigned long long)k.ideal[0], (unsigned long long)k.bytes[0],
                (unsigned long long)k.req[1], (unsigned long long)k.sect[1], (unsigned long long)k.ideal[1],
                (unsigned long long)k.bytes[1], (unsigned long long)k.unique[0], (unsigned long long)k.unique[1],
                (unsigned long long)k.sreq, (unsigned long long)k.swave, (unsigned long long)k.sideal);
        // its instructions by source line (the host compiler's copies of one line added up), most excess first
        std::map<std::tuple<std::string, int, int>, PcStat> by_line;
        for (auto &p : k.pcs) {
            PcStat &l = by_line[std::make_tuple(where_pc[p.first], p.second.space, p.second.store)];
            l.req += p.second.req, l.units += p.second.units, l.ideal += p.second.ideal;
        }
        std::vector<std::pair<std::tuple<std::string, int, int>, PcStat>> rows(by_line.begin(), by_line.end());
        std::stable_sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) {
            return a.second.units - a.second.ideal > b.second.units - b.second.ideal;
        });
        for (auto &r : rows)
            fprintf(fl, "%s\t%s\t%s\t%s\t%llu\t%llu\t%llu\t%llu\n", e.first.c_str(), std::get<0>(r.first).c_str(),
                    std::get<1>(r.first) == SHARED ? "shared" : "global", std::get<2>(r.first) ? "store" : "load",
                    (unsigned long long)r.second.req, (unsigned long long)r.second.units,
                    (unsigned long long)r.second.ideal, (unsigned long long)(r.second.units - r.second.ideal));
    }
    fclose(f);
    fclose(fl);
    fprintf(stderr, "CUDA emulator: memory profile of %zu kernels written to %s (by source line: %s)\n", stats.size(),
            profile_path, lpath.c_str());
}

bool init() {
    const char *p = getenv("AVGEN_EMU_MEMPROFILE"), *r = getenv("AVGEN_EMU_RACES");
    profile_path = p && *p ? p : nullptr;
    races = r && !strcmp(r, "1");
    const char *ic = getenv("AVGEN_EMU_INITCHECK");
    initcheck = ic && !strcmp(ic, "1");
    const char *oc = getenv("AVGEN_EMU_OPCHECK");
    opcheck = oc && !strcmp(oc, "1");
    if (profile_path) atexit(write_profile);
    return profile_path || races || initcheck || opcheck;
}

}  // namespace

bool on() {
    static const bool v = init();
    return v;
}

void launch_begin(const char *name, const unsigned char *smem, size_t smem_bytes) {
    active = true;
    smem_lo = (uintptr_t)smem, smem_hi = smem_lo + smem_bytes;
    faulted = false, fault_why[0] = 0;
    shadow_global.clear();
    dev_hit.forget(), shared_hit.forget(), arena_hit.forget(), none_hit.forget();
    if (initcheck && smem_bytes) init_region(smem_lo, smem_bytes);
    if (profile_path) {
        ks = &stats[name];
        ks->launches++;
        touched[0].clear(), touched[1].clear();
    }
}

void launch_end() {
    active = false;
    drop_region(smem_lo);  // (the buffer goes with the launch)
    if (profile_path && ks) ks->unique[0] += 32 * touched[0].size(), ks->unique[1] += 32 * touched[1].size();
}

void block_begin() {
    block_no =
        block_idx.x + (unsigned long long)grid_dim.x * (block_idx.y + (unsigned long long)grid_dim.y * block_idx.z);
    bar = 0;
    memset(wsync, 0, sizeof wsync);
    shadow_shared.clear();
    if (initcheck && smem_hi > smem_lo) init_region(smem_lo, smem_hi - smem_lo);  // a block's shared memory is its own
    for (int i = 0; i < nthreads; i++) threads[i].occ.clear(), threads[i].vlo = threads[i].vhi = 0;
    nthreads = (int)(block_dim.x * block_dim.y * block_dim.z);
    recs.clear();
}

void barrier() {
    bar++;
    if (profile_path) flush();
}

void warp_sync(int w) { wsync[w]++; }

bool block_end(char *why, size_t n) {
    if (profile_path) flush();
    if (!faulted) return true;
    snprintf(why, n, "%s", fault_why);
    return false;
}

void shared_array(const void *p, size_t bytes) {
    shared_arr[(uintptr_t)p] = bytes;
    shared_hit.forget(), none_hit.forget();
    if (initcheck) init_region((uintptr_t)p, bytes);  // (at its first use in each block)
}

void dev_alloc(const void *p, size_t bytes) {
    dev_hit.forget(), none_hit.forget();
    if (initcheck) init_region((uintptr_t)p, bytes);
}
void dev_free(const void *p) {
    drop_region((uintptr_t)p);
    dev_hit.forget(), none_hit.forget();
}
void dev_written(const void *p, size_t n) {
    if (initcheck) set_bits((uintptr_t)p, n);
}
void dev_copied(void *dst, const void *src, size_t n) {
    if (!initcheck) return;
    uintptr_t s;
    if (!bits_of((uintptr_t)src, &s)) return set_bits((uintptr_t)dst, n);  // from the host: written
    for (size_t i = 0; i < n; i++) {                                       // from the device: as written as the source
        size_t off, size;
        if (!unwritten((uintptr_t)src + i, 1, &off, &size)) set_bits((uintptr_t)dst + i, 1);
    }
}
bool dev_unwritten(const void *p, size_t n, char *why, size_t wn) {
    size_t off, size;
    if (!initcheck || !unwritten((uintptr_t)p, n, &off, &size)) return false;
    snprintf(why, wn, "reads device memory never written: byte %zu of a %zu-byte allocation", off, size);
    return true;
}

void vector_access(const void *p, size_t bytes, bool store, const void *pc) {
    if (!active) return;
    access(p, bytes, store, (uintptr_t)(pc ? pc : __builtin_return_address(0)), true);
}

bool counts(const char *kernel, Counts *c) {
    auto it = stats.find(kernel);
    if (it == stats.end()) return false;
    const KStat &k = it->second;
    *c =
        Counts{k.launches, k.req[0], k.sect[0], k.bytes[0], k.req[1], k.sect[1], k.bytes[1], k.sreq, k.swave, k.sideal};
    return true;
}

const char *last_fault() { return fault_why; }

bool opcheck_on() { return on() && opcheck; }
void arena(const void *p, size_t bytes) {
    arenas[(uintptr_t)p] = bytes;
    arena_hit.forget();
}
void arena_gone(const void *p) {
    const uintptr_t lo = (uintptr_t)p;
    auto it = arenas.find(lo);
    if (it == arenas.end()) return;
    const uintptr_t hi = lo + it->second;
    tensor_names.erase(std::remove_if(tensor_names.begin(), tensor_names.end(),
                                      [&](const Named &t) { return t.lo >= lo && t.lo < hi; }),
                       tensor_names.end());
    arenas.erase(it);
    arena_hit.forget();
}
void tensor(const void *p, size_t bytes, const char *name) {
    tensor_names.push_back(Named{(uintptr_t)p, (uintptr_t)p + bytes, name});
}
void op_begin(const char *name, const void *const *p, const size_t *n, int count) {
    auto c = std::make_shared<OpCtx>();
    c->name = name;
    for (int i = 0; i < count; i++)
        if (n[i]) c->allow.push_back({(uintptr_t)p[i], (uintptr_t)p[i] + n[i]});
    std::sort(c->allow.begin(), c->allow.end());
    std::vector<std::pair<uintptr_t, uintptr_t>> merged;  // (overlapping ranges, the bf16 and fp32 views: one)
    for (auto &r : c->allow)
        if (!merged.empty() && r.first <= merged.back().second)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    c->allow = merged;
    op_current = c;
}
void op_end() { op_current.reset(); }
std::shared_ptr<const void> op_submitted() { return op_current; }
void op_enter(const std::shared_ptr<const void> &ctx) { op_running = (const OpCtx *)ctx.get(); }
bool op_outside(const void *p, size_t n, bool store, char *why, size_t wn) {
    if (!opcheck || !outside_op((uintptr_t)p, n)) return false;
    snprintf(why, wn, "op %s %s %s", op_running->name.c_str(), store ? "writes" : "reads", place((uintptr_t)p).c_str());
    return true;
}

}  // namespace trace
}  // namespace avgen_emu

// The instrumentation's entry points (the compiler's calls; GCC's and Clang's names). Unaligned and volatile
// accesses count as any other; function entry and exit are not needed.
#define AVGEN_TSAN_RW(n)                                                                      \
    extern "C" void __tsan_read##n(void *p) {                                                 \
        avgen_emu::trace::access(p, n, false, (uintptr_t)__builtin_return_address(0), false); \
    }                                                                                         \
    extern "C" void __tsan_write##n(void *p) {                                                \
        avgen_emu::trace::access(p, n, true, (uintptr_t)__builtin_return_address(0), false);  \
    }                                                                                         \
    extern "C" void __tsan_unaligned_read##n(void *p) {                                       \
        avgen_emu::trace::access(p, n, false, (uintptr_t)__builtin_return_address(0), false); \
    }                                                                                         \
    extern "C" void __tsan_unaligned_write##n(void *p) {                                      \
        avgen_emu::trace::access(p, n, true, (uintptr_t)__builtin_return_address(0), false);  \
    }
AVGEN_TSAN_RW(1)
AVGEN_TSAN_RW(2)
AVGEN_TSAN_RW(4)
AVGEN_TSAN_RW(8)
AVGEN_TSAN_RW(16)
#undef AVGEN_TSAN_RW
extern "C" void __tsan_read_range(void *p, unsigned long n) {
    avgen_emu::trace::access(p, n, false, (uintptr_t)__builtin_return_address(0), false);
}
extern "C" void __tsan_write_range(void *p, unsigned long n) {
    avgen_emu::trace::access(p, n, true, (uintptr_t)__builtin_return_address(0), false);
}
extern "C" void __tsan_init(void) {}
extern "C" void __tsan_func_entry(void *) {}
extern "C" void __tsan_func_exit(void) {}
extern "C" void __tsan_vptr_update(void **, void *) {}
extern "C" void __tsan_vptr_read(void **) {}
// (a function-local static's guard, read with an acquire load)
extern "C" unsigned char __tsan_atomic8_load(const volatile unsigned char *a, int) {
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);
}
