#!/usr/bin/env python3
"""resid_bf16.py: how much a bf16 residual stream would move a training step on top of what the CUDA backend's
bf16 path rounds today (every backbone matrix product's operands), in float64 PyTorch on the CPU.

  /usr/bin/python3 bench/resid_bf16.py CONFIG.json [--wild]

CONFIG.json: a resolved description (`avgen check MODEL.json --print-json`), e.g. ViT-B/16 LAVISH at B = 1, T = 2.
One step of tests/reference/lavish_ref.py's model (random parameters as its fixtures make them: every gate live;
without --wild the backbone's matrices scaled by 0.3, to about a pretrained ViT's spread, and the gates by 0.2),
three times: exact; with bf16 GEMM operands (the frozen weights rounded to bf16, and in the forward the LayerNorm
outputs, q, k, v, the attention probabilities, the attention output and the GELU output, the operands the CUDA
backend's bf16 GEMMs and fused attention round); with those and the residual stream (the embeddings and every
sub-layer's sum x + f(x) + adapter) rounded to bf16. Roundings pass the gradient through unchanged (the CUDA
backend keeps these tensors' gradients in fp32 or rounds them separately). Prints, for each rounded run, the
relative L2 error against exact of the logits and the loss, the median over every dumped tensor (logits, loss,
each trainable tensor's gradient, BatchNorm buffers) and how many exceed 2e-2; and the stream's own share (the
third run against the second). About 2 minutes a run on 2 cores; no downloads."""
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import lavish_ref as R  # noqa: E402


class RoundBF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.to(torch.bfloat16).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


def rb(t):
    return RoundBF.apply(t)


def attn_bf16(self, x):
    """Block.attn with every matrix product's operands rounded to bf16, as the CUDA backend's bf16 GEMMs and
    fused attention round them (the frozen weights are rounded once, in run())."""
    n, N, D = x.shape
    hd = D // self.heads
    h = rb(self.layernorm_before(x))
    at = self.attention.attention

    def split(t):
        return rb(t.reshape(n, N, self.heads, hd).permute(0, 2, 1, 3))

    q, k, v = split(at.query(h)), split(at.key(h)), split(at.value(h))
    p = rb(R.torch.softmax(q @ k.transpose(-1, -2) / R.math.sqrt(hd), dim=-1))
    o = rb((p @ v).permute(0, 2, 1, 3).reshape(n, N, D))
    return self.attention.output.dense(o)


def mlp_bf16(self, x):
    return self.output.dense(rb(R.F.gelu(self.intermediate.dense(rb(self.layernorm_after(x))))))


def run(cfg, mode, wild):
    torch.manual_seed(0)
    model = R.Model(cfg).double()
    gen = torch.Generator().manual_seed(0)
    R.randomize(model, gen)
    if not wild:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.startswith("vit.") and n.endswith(".weight") and "layernorm" not in n:
                    p.mul_(0.3)
                if n.endswith(".gate") or n.endswith(".gate_av"):
                    p.mul_(0.2)
    if mode != "exact":  # the bf16 GEMMs: frozen weights rounded once, every backbone product's operands
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.startswith("vit.") and n.endswith(".weight") and "layernorm" not in n:
                    p.copy_(p.to(torch.bfloat16).double())
        for blk in model.vit.encoder.layer:
            blk.attn = attn_bf16.__get__(blk)
            blk.mlp = mlp_bf16.__get__(blk)
    if mode == "stream":
        model.stream = RoundBF.apply
    labels = torch.randint(0, cfg.C, (cfg.B,), generator=gen)
    frames = torch.randn(cfg.B, cfg.T, 3, cfg.S, cfg.S, generator=gen, dtype=torch.float64)
    audio = torch.randn(cfg.B, cfg.T, cfg.A, cfg.M, generator=gen, dtype=torch.float64)
    out = R.step(model, frames, audio, labels)
    return {k: v.double() for k, v in out.items() if v.is_floating_point()}


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    wild = "--wild" in sys.argv[2:]
    cfg = R.Cfg(json.load(open(sys.argv[1])))
    exact = run(cfg, "exact", wild)
    print(f"exact: loss {float(exact['loss']):.6f}")
    gemm = None
    for mode, what in (("gemm", "bf16 GEMM operands"), ("stream", "bf16 GEMM operands and the residual stream")):
        got = run(cfg, mode, wild)
        err = {}
        for k, x in exact.items():
            n = x.norm().item()
            err[k] = (x - got[k]).norm().item() / (n if n > 0 else 1.0)
        over = sum(1 for e in err.values() if e > 2e-2)
        print(f"{what}: logits {err['logits']:.2e}, loss {err['loss']:.2e}, median of {len(err)} tensors "
              f"{statistics.median(err.values()):.2e}, {over} above 2e-2")
        if gemm is None:
            gemm = got
        else:  # the stream's own share: against the bf16-GEMM run
            d = []
            for k, x in gemm.items():
                n = x.norm().item()
                d.append((x - got[k]).norm().item() / (n if n > 0 else 1.0))
            print(f"  the residual stream's rounding alone (against bf16 GEMM operands): median {statistics.median(d):.2e}")


if __name__ == "__main__":
    main()
