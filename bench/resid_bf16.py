#!/usr/bin/env python3
"""resid_bf16.py: how much a bf16 residual stream would move a training step, against rounding only what the CUDA
backend's bf16 activations round today (the backbone LayerNorms' outputs), in float64 PyTorch on the CPU.

  /usr/bin/python3 bench/resid_bf16.py CONFIG.json [--wild]

CONFIG.json: a resolved description (`avgen check MODEL.json --print-json`), e.g. ViT-B/16 LAVISH at B = 1, T = 2.
One step of tests/reference/lavish_ref.py's model (random parameters as its fixtures make them: every gate live;
without --wild the backbone's matrices scaled by 0.3, to about a pretrained ViT's spread, and the gates by 0.2),
three times: exact; with every LayerNorm output of the backbone rounded to bf16 in the forward; with the residual
stream (the embeddings and every sub-layer's sum x + f(x) + adapter) rounded to bf16 in the forward. Roundings pass
the gradient through unchanged (the CUDA backend keeps the gradients of these tensors in fp32). Prints, for each
rounded run, the relative L2 error of the logits and the loss and the median over every dumped tensor (logits,
loss, each trainable tensor's gradient, BatchNorm buffers) and how many exceed 2e-2. About 2 minutes a run on
2 cores; no downloads."""
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


def forward(self, frames, audio, round_stream):
    """lavish_ref.Model.forward with the residual stream optionally rounded."""
    c = self.c
    B, T = c.B, c.T
    rb = RoundBF.apply if round_stream else (lambda t: t)
    xv = rb(self.embed(frames.reshape(B * T, 3, c.S, c.S), c.nv)) if c.use_v else None
    xa = None
    if c.use_a:
        img = audio.reshape(B * T, 1, c.A, c.M)[:, :, : (c.A // c.P) * c.P, : (c.M // c.P) * c.P]
        xa = rb(self.embed(img.expand(-1, 3, -1, -1), c.na))
    for l, blk in enumerate(self.vit.encoder.layer):
        for part, sub in (("p1", blk.attn), ("p2", blk.mlp)):
            av, aa = self.adapter("vis_adapter_blocks_" + part, l), self.adapter("audio_adapter_blocks_" + part, l)
            rv = av(xv, xa) if av is not None else 0
            ra = aa(xa, xv) if aa is not None else 0
            nv = rb(xv + sub(xv) + rv) if c.use_v else None
            na = rb(xa + sub(xa) + ra) if c.use_a else None
            xv, xa = nv, na
    feats = []
    if c.use_a:
        feats.append(self.vit.layernorm(xa[:, 0]))
    if c.use_v:
        feats.append(self.vit.layernorm(xv[:, 0]))
    f = torch.cat(feats, dim=-1).reshape(B, T, -1).mean(dim=1)
    return self.mlp_class_2(self.mlp_class(f))


class RoundedLN(torch.nn.Module):
    def __init__(self, ln):
        super().__init__()
        self.ln = ln

    def forward(self, x):
        return RoundBF.apply(self.ln(x))


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
    if mode == "ln":
        for blk in model.vit.encoder.layer:
            blk.layernorm_before = RoundedLN(blk.layernorm_before)
            blk.layernorm_after = RoundedLN(blk.layernorm_after)
    model.forward = lambda f, a: forward(model, f, a, mode == "stream")
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
    for mode, what in (("ln", "LayerNorm outputs in bf16"), ("stream", "residual stream in bf16")):
        got = run(cfg, mode, wild)
        err = {}
        for k, x in exact.items():
            n = x.norm().item()
            err[k] = (x - got[k]).norm().item() / (n if n > 0 else 1.0)
        over = sum(1 for e in err.values() if e > 2e-2)
        print(f"{what}: logits {err['logits']:.2e}, loss {err['loss']:.2e}, median of {len(err)} tensors "
              f"{statistics.median(err.values()):.2e}, {over} above 2e-2")


if __name__ == "__main__":
    main()
