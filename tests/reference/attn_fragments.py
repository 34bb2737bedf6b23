"""attn_fragments.py: a lane-level emulation of the fused attention kernels of runtime/rt_cuda_kernels.cuh
(k_attn_fwd, k_attn_bwd_dq, k_attn_bwd_dkv), for review without a GPU: the same staging, fragment indexing
(mma.sync m16n8k16 register layouts and ldmatrix .x4 .trans distribution as the PTX ISA gives them, with
the kernels' own lane addresses), masking, online softmax and chunk loops,
written in Python line by line after the CUDA text, with bf16 rounding of the operands; checked against
float64 attention (forward, log-sum-exp, dQ, dK, dV) at awkward sizes (several blocks and chunks, N not a
multiple of 8 or 16, head widths 16, 32, 64). It checks the algorithm and its index arithmetic, not the
compiled kernels (tests/device/run.sh does that on a GPU); keep it in step when the kernels change.
usage: python3 tests/reference/attn_fragments.py (needs numpy); exit status 1 when an error exceeds 2e-2."""
import numpy as np, math
rng = np.random.default_rng(3)

def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7fff + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)

ROWS = 64

def mma(c, a, b):
    # c: [32][4], a: [32][4][2] (pairs of bf16 as floats, low first), b: [32][2][2]
    A = np.zeros((16, 16), np.float32); B = np.zeros((16, 8), np.float32)
    for l in range(32):
        g, t = l >> 2, l & 3
        for r in range(4):
            row = g + 8 * (r % 2); k = 2 * t + 8 * (r // 2)
            A[row, k], A[row, k + 1] = a[l][r]
        for r in range(2):
            k = 2 * t + 8 * r
            B[k, g], B[k + 1, g] = b[l][r]
    D = A.astype(np.float64) @ B.astype(np.float64)
    for l in range(32):
        g, t = l >> 2, l & 3
        for r in range(4):
            row = g + 8 * (r // 2); col = 2 * t + r % 2
            c[l][r] += D[row, col]

def load_a(HD, src, rs, r0, n):  # src: flat array, returns [32][KS][4][2]
    out = []
    for l in range(32):
        g, t = l >> 2, l & 3
        fr = []
        for kk in range(HD // 16):
            regs = []
            for i in range(4):
                row = r0 + g + (i & 1) * 8; col = kk * 16 + 2 * t + (i >> 1) * 8
                v = (src[row * rs + col], src[row * rs + col + 1]) if row < n else (0.0, 0.0)
                regs.append(tuple(bf16(np.array(v, np.float32))))
            fr.append(regs)
        out.append(fr)
    return out

def stage(HD, tile, src, rs, c0, n):
    """attn_stage2 for one of its two tiles: thread tid's element i of group g0 is e = tid + (g0 + i) * 128."""
    per = ROWS * HD // 2 // 128
    grp = min(per, 8)
    seen = set()
    for tid in range(128):
        for g0 in range(0, per, grp):
            for i in range(grp):
                e = tid + (g0 + i) * 128
                seen.add(e)
                row = e // (HD // 2); d = (e % (HD // 2)) * 2
                v = (src[(c0 + row) * rs + d], src[(c0 + row) * rs + d + 1]) if c0 + row < n else (0.0, 0.0)
                v = bf16(np.array(v, np.float32))
                tile[row * (HD + 8) + d], tile[row * (HD + 8) + d + 1] = v
    assert seen == set(range(ROWS * HD // 2)), "staging misses or repeats elements"

def ldsm_x4_trans(tile, addr):
    """ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: lane l gives the address (an index into tile) of row
    l & 7 of matrix l >> 3; register i of lane (g, t) receives (M_i[2t][g], M_i[2t+1][g]), low half first."""
    M = [[tile[addr[m * 8 + r]:addr[m * 8 + r] + 8] for r in range(8)] for m in range(4)]
    return [[(M[i][2 * (l & 3)][l >> 2], M[i][2 * (l & 3) + 1][l >> 2]) for i in range(4)] for l in range(32)]

def mma_nt(HD, a, tile, nc):  # returns acc[32][8][4]; column groups from nc on stay zero
    acc = [[[0.0] * 4 for _ in range(8)] for _ in range(32)]
    for j in range(8):
        if j * 8 >= nc: continue
        for kk in range(HD // 16):
            c = [acc[l][j] for l in range(32)]
            b = []
            for l in range(32):
                g, t = l >> 2, l & 3
                base = (j * 8 + g) * (HD + 8) + kk * 16 + 2 * t
                b.append(((tile[base], tile[base + 1]), (tile[base + 8], tile[base + 9])))
            mma(c, [a[l][kk] for l in range(32)], b)
    return acc

def mma_pv(HD, out, p, tile, nc):
    for kk in range(4):
        if kk * 16 >= nc: break
        a = []
        for l in range(32):
            q = p[l]
            a.append([tuple(bf16(np.array(v, np.float32))) for v in
                      ((q[2*kk][0], q[2*kk][1]), (q[2*kk][2], q[2*kk][3]), (q[2*kk+1][0], q[2*kk+1][1]), (q[2*kk+1][2], q[2*kk+1][3]))])
        for nn in range(0, HD // 8, 2):
            addr = [(kk * 16 + (l & 7) + ((l >> 3) & 1) * 8) * (HD + 8) + (nn + (l >> 4)) * 8 for l in range(32)]
            regs = ldsm_x4_trans(tile, addr)
            for half in range(2):
                c = [out[l][nn + half] for l in range(32)]
                mma(c, a, [(regs[l][2 * half], regs[l][2 * half + 1]) for l in range(32)])

def store(HD, dst, off, rs, acc, r0, n, s0, s1):
    for l in range(32):
        g, t = l >> 2, l & 3
        sc0 = s0[l] if isinstance(s0, list) else s0; sc1 = s1[l] if isinstance(s1, list) else s1
        for j in range(HD // 8):
            if r0 + g < n:
                dst[off + (r0 + g) * rs + j * 8 + 2 * t] = acc[l][j][0] * sc0
                dst[off + (r0 + g) * rs + j * 8 + 2 * t + 1] = acc[l][j][1] * sc0
            if r0 + g + 8 < n:
                dst[off + (r0 + g + 8) * rs + j * 8 + 2 * t] = acc[l][j][2] * sc1
                dst[off + (r0 + g + 8) * rs + j * 8 + 2 * t + 1] = acc[l][j][3] * sc1

def quad_max(v):  # per lane list -> max over the 4 lanes of each group
    return [max(v[(l & ~3) + i] for i in range(4)) for l in range(32)]
def quad_sum(v):
    return [sum(v[(l & ~3) + i] for i in range(4)) for l in range(32)]

def fwd(qkv, P, N, H, HD, scale):
    D = H * HD; rs = 3 * D
    O = np.zeros(P * N * D, np.float32); lse = np.zeros(P * H * N, np.float32)
    for p in range(P):
        for h in range(H):
            for bx in range((N + 63) // 64):
                Ks = np.zeros(ROWS * (HD + 8), np.float32); Vs = np.zeros(ROWS * (HD + 8), np.float32)
                q0 = p * N * rs + h * HD
                warps = []
                for w in range(4):
                    r0 = bx * 64 + w * 16
                    qa = load_a(HD, qkv[q0:], rs, r0, N)
                    warps.append(dict(r0=r0, qa=qa, o=[[[0.0]*4 for _ in range(HD//8)] for _ in range(32)],
                                      m0=[-math.inf]*32, m1=[-math.inf]*32, l0=[0.0]*32, l1=[0.0]*32))
                for c0 in range(0, N, 64):
                    stage(HD, Ks, qkv[q0 + D:], rs, c0, N)
                    stage(HD, Vs, qkv[q0 + 2 * D:], rs, c0, N)
                    for W in warps:
                        if W['r0'] >= N: continue
                        s = mma_nt(HD, W['qa'], Ks, N - c0)
                        x0 = list(W['m0']); x1 = list(W['m1'])
                        for l in range(32):
                            t = l & 3
                            for j in range(8):
                                for e in range(2):
                                    inn = c0 + j * 8 + 2 * t + e < N
                                    s[l][j][e] = s[l][j][e] * scale if inn else -math.inf
                                    s[l][j][2+e] = s[l][j][2+e] * scale if inn else -math.inf
                                    x0[l] = max(x0[l], s[l][j][e]); x1[l] = max(x1[l], s[l][j][2+e])
                        x0 = quad_max(x0); x1 = quad_max(x1)
                        for l in range(32):
                            a0 = math.exp(W['m0'][l] - x0[l]) if W['m0'][l] != -math.inf else 0.0
                            a1 = math.exp(W['m1'][l] - x1[l]) if W['m1'][l] != -math.inf else 0.0
                            W['m0'][l], W['m1'][l] = x0[l], x1[l]
                            W['l0'][l] *= a0; W['l1'][l] *= a1
                            for j in range(HD // 8):
                                o = W['o'][l][j]; o[0] *= a0; o[1] *= a0; o[2] *= a1; o[3] *= a1
                            for j in range(8):
                                q = s[l][j]
                                q[0] = math.exp(q[0] - W['m0'][l]); q[1] = math.exp(q[1] - W['m0'][l])
                                q[2] = math.exp(q[2] - W['m1'][l]); q[3] = math.exp(q[3] - W['m1'][l])
                                W['l0'][l] += q[0] + q[1]; W['l1'][l] += q[2] + q[3]
                        mma_pv(HD, W['o'], s, Vs, N - c0)
                for W in warps:
                    l0 = quad_sum(W['l0']); l1 = quad_sum(W['l1'])
                    store(HD, O, p * N * D + h * HD, D, W['o'], W['r0'], N, [1/v if v else math.inf for v in l0], [1/v if v else math.inf for v in l1])
                    for l in range(32):
                        g, t = l >> 2, l & 3
                        if t == 0:
                            base = (p * H + h) * N
                            if W['r0'] + g < N: lse[base + W['r0'] + g] = W['m0'][l] + math.log(l0[l])
                            if W['r0'] + g + 8 < N: lse[base + W['r0'] + g + 8] = W['m1'][l] + math.log(l1[l])
    return O, lse

def bwd(dO, qkv, lse, delta, P, N, H, HD, scale):
    D = H * HD; rs = 3 * D
    dqkv = np.zeros(P * N * rs, np.float32)
    for p in range(P):
        for h in range(H):
            st = (p * H + h) * N
            q0 = p * N * rs + h * HD; o0 = p * N * D + h * HD
            for bx in range((N + 63) // 64):
                # dq kernel
                Ks = np.zeros(ROWS * (HD + 8), np.float32); Vs = np.zeros(ROWS * (HD + 8), np.float32)
                warps = []
                for w in range(4):
                    r0 = bx * 64 + w * 16
                    W = dict(r0=r0, qa=load_a(HD, qkv[q0:], rs, r0, N), da=load_a(HD, dO[o0:], D, r0, N),
                             dq=[[[0.0]*4 for _ in range(HD//8)] for _ in range(32)])
                    W['ls0'] = [lse[st + r0 + (l>>2)] if r0 + (l>>2) < N else 0.0 for l in range(32)]
                    W['ls1'] = [lse[st + r0 + (l>>2) + 8] if r0 + (l>>2) + 8 < N else 0.0 for l in range(32)]
                    W['dl0'] = [delta[st + r0 + (l>>2)] if r0 + (l>>2) < N else 0.0 for l in range(32)]
                    W['dl1'] = [delta[st + r0 + (l>>2) + 8] if r0 + (l>>2) + 8 < N else 0.0 for l in range(32)]
                    warps.append(W)
                for c0 in range(0, N, 64):
                    stage(HD, Ks, qkv[q0 + D:], rs, c0, N)
                    stage(HD, Vs, qkv[q0 + 2 * D:], rs, c0, N)
                    for W in warps:
                        if W['r0'] >= N: continue
                        s = mma_nt(HD, W['qa'], Ks, N - c0); dp = mma_nt(HD, W['da'], Vs, N - c0)
                        for l in range(32):
                            t = l & 3
                            for j in range(8):
                                for e in range(2):
                                    inn = c0 + j * 8 + 2 * t + e < N
                                    p0 = math.exp(s[l][j][e] * scale - W['ls0'][l]) if inn else 0.0
                                    p1 = math.exp(s[l][j][2+e] * scale - W['ls1'][l]) if inn else 0.0
                                    s[l][j][e] = p0 * (dp[l][j][e] - W['dl0'][l]) * scale
                                    s[l][j][2+e] = p1 * (dp[l][j][2+e] - W['dl1'][l]) * scale
                        mma_pv(HD, W['dq'], s, Ks, N - c0)
                for W in warps:
                    store(HD, dqkv, p * N * rs + h * HD, rs, W['dq'], W['r0'], N, 1.0, 1.0)
                # dkv kernel
                Qs = np.zeros(ROWS * (HD + 8), np.float32); Os = np.zeros(ROWS * (HD + 8), np.float32)
                warps = []
                for w in range(4):
                    r0 = bx * 64 + w * 16
                    warps.append(dict(r0=r0, ka=load_a(HD, qkv[q0 + D:], rs, r0, N), va=load_a(HD, qkv[q0 + 2*D:], rs, r0, N),
                                      dk=[[[0.0]*4 for _ in range(HD//8)] for _ in range(32)],
                                      dv=[[[0.0]*4 for _ in range(HD//8)] for _ in range(32)]))
                for c0 in range(0, N, 64):
                    stage(HD, Qs, qkv[q0:], rs, c0, N)
                    stage(HD, Os, dO[o0:], D, c0, N)
                    lse_s = [lse[st + c0 + i] if c0 + i < N else 0.0 for i in range(64)]
                    del_s = [delta[st + c0 + i] if c0 + i < N else 0.0 for i in range(64)]
                    for W in warps:
                        if W['r0'] >= N: continue
                        s = mma_nt(HD, W['ka'], Qs, N - c0); dp = mma_nt(HD, W['va'], Os, N - c0)
                        for l in range(32):
                            t = l & 3
                            for j in range(8):
                                for e in range(2):
                                    c = j * 8 + 2 * t + e; inn = c0 + c < N
                                    lv, dl = lse_s[c], del_s[c]
                                    s[l][j][e] = math.exp(s[l][j][e] * scale - lv) if inn else 0.0
                                    s[l][j][2+e] = math.exp(s[l][j][2+e] * scale - lv) if inn else 0.0
                                    dp[l][j][e] = s[l][j][e] * (dp[l][j][e] - dl) * scale
                                    dp[l][j][2+e] = s[l][j][2+e] * (dp[l][j][2+e] - dl) * scale
                        mma_pv(HD, W['dv'], s, Os, N - c0)
                        mma_pv(HD, W['dk'], dp, Qs, N - c0)
                for W in warps:
                    store(HD, dqkv, p * N * rs + D + h * HD, rs, W['dk'], W['r0'], N, 1.0, 1.0)
                    store(HD, dqkv, p * N * rs + 2 * D + h * HD, rs, W['dv'], W['r0'], N, 1.0, 1.0)
    return dqkv

def reference(qkv, dO, P, N, H, HD, scale):
    D = H * HD
    x = qkv.reshape(P, N, 3, H, HD).astype(np.float64)
    Q, K, V = x[:, :, 0].transpose(0, 2, 1, 3), x[:, :, 1].transpose(0, 2, 1, 3), x[:, :, 2].transpose(0, 2, 1, 3)
    S = Q @ K.transpose(0, 1, 3, 2) * scale
    m = S.max(-1, keepdims=True); E = np.exp(S - m); L = E.sum(-1, keepdims=True); Pm = E / L
    lse = (m + np.log(L))[..., 0]
    O = Pm @ V
    g = dO.reshape(P, N, H, HD).transpose(0, 2, 1, 3).astype(np.float64)
    dV = Pm.transpose(0, 1, 3, 2) @ g
    dP = g @ V.transpose(0, 1, 3, 2)
    delta = (g * O).sum(-1, keepdims=True)
    dS = Pm * (dP - delta) * scale
    dQ = dS @ K; dK = dS.transpose(0, 1, 3, 2) @ Q
    dqkv = np.stack([dQ, dK, dV], 2)  # P H 3 N HD
    dqkv = dqkv.transpose(0, 3, 2, 1, 4).reshape(-1)
    return O.transpose(0, 2, 1, 3).reshape(-1), lse.reshape(-1), delta[..., 0].reshape(-1), dqkv

def rel(a, b): return np.linalg.norm(a - b) / np.linalg.norm(b)

worst = 0.0
for (P, N, H, HD) in [(1, 77, 2, 16), (2, 13, 1, 32), (1, 70, 1, 64)]:
    scale = 1 / math.sqrt(HD)
    qkv = rng.standard_normal(P * N * 3 * H * HD).astype(np.float32)
    dO = rng.standard_normal(P * N * H * HD).astype(np.float32)
    O_r, lse_r, delta_r, dqkv_r = reference(qkv, dO, P, N, H, HD, scale)
    O, lse = fwd(qkv, P, N, H, HD, scale)
    dqkv = bwd(dO, qkv, lse, delta_r, P, N, H, HD, scale)
    D = H * HD
    d3 = dqkv.reshape(P, N, 3, D); r3 = dqkv_r.reshape(P, N, 3, D)
    errs = [rel(O, O_r), rel(lse, lse_r)] + [rel(d3[:, :, i], r3[:, :, i]) for i in range(3)]
    worst = max(worst, *errs)
    print(f"P={P} N={N} H={H} HD={HD}: O {errs[0]:.2e}  lse {errs[1]:.2e}  dQ {errs[2]:.2e}  dK {errs[3]:.2e}  dV {errs[4]:.2e}")
print(f"worst relative L2 error {worst:.2e} (bf16 operands; limit 2e-2)")
raise SystemExit(0 if worst <= 2e-2 else 1)
