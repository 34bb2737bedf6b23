#!/usr/bin/env python3
"""PyTorch reference for avgen's CPU backend: one training step of the model in shared/spec/MODEL.md,
written from the spec with nn.Module and autograd (not from the C code), in float64.

  lavish_ref.py dump CONFIG.json --params P.safetensors --inputs I.safetensors --out O.safetensors
                [--update-out U.safetensors]   (then one torch.optim Adam/AdamW step; all parameters after it)
  lavish_ref.py fixture CONFIG.json --out-dir DIR [--seed S]
      random parameters (every gate live, every value non-zero), random inputs, the expected dump and the
      eval-mode logits (BatchNorm running statistics): DIR/params.safetensors, DIR/inputs.safetensors,
      DIR/expected.safetensors, DIR/expected_eval.safetensors

CONFIG.json is a resolved model description (`avgen check MODEL.json --print-json`). The dump holds
logits, loss, grad.<name> of every trainable tensor and the BatchNorm buffers after the step, the
contract avgen step writes too.

Grouped 1x1 projections are written as per-group matrix products on [pairs, tokens, channels] and
BatchNorm as F.batch_norm on a contiguous [rows, channels] view: Debian's torch 1.13 computes wrong
BatchNorm2d gradients for the official code's (B', D, N, 1) transposed layout (checked with gradcheck).
Runs on Debian's python3-torch (CPU); no downloads.
"""
import argparse
import json
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

_DT = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}
_TD = {v: k for k, v in _DT.items()}
_TD["BF16"] = torch.bfloat16
_TD["F16"] = torch.float16


def save(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        dt = _TD[meta["dtype"]]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dt) if b > a else torch.empty(0, dtype=dt)
        out[name] = t.reshape(meta["shape"]).clone()
    return out


class Cfg:
    def __init__(self, j):
        bb, vid, au, ad, hd, tr = j["backbone"], j["video"], j["audio"], j["adapter"], j["head"], j["train"]
        self.S, self.P, self.D, self.L = bb["image_size"], bb["patch_size"], bb["dim"], bb["depth"]
        self.H, self.Fm, self.ln_eps = bb["heads"], bb["mlp_dim"], bb["ln_eps"]
        self.T, self.B = vid["frames"], tr["batch"]
        self.A, self.M = au["target_frames"], au["mel_bins"]
        self.fusion = j["fusion"]
        self.m, self.r, self.G, self.bn = ad["latent_tokens"], ad["reduction"], ad["groups"], ad["batchnorm"]
        self.layers = list(range(self.L)) if ad["layers"] == "all" else list(ad["layers"])
        self.sub = ad["sublayers"]
        self.hidden, self.C = hd["hidden"], hd["classes"]
        self.nv = (self.S // self.P) ** 2 + 1
        self.na = (self.A // self.P) * (self.M // self.P) + 1
        self.use_v = self.fusion in ("lavish", "late", "vision")
        self.use_a = self.fusion in ("lavish", "late", "audio")


class Holder(nn.Module):
    pass


class Block(nn.Module):
    """One pre-norm ViT layer with Hugging Face's parameter names."""

    def __init__(self, c):
        super().__init__()
        D = c.D
        self.layernorm_before = nn.LayerNorm(D, eps=c.ln_eps)
        self.attention = Holder()
        self.attention.attention = Holder()
        for n in ("query", "key", "value"):
            setattr(self.attention.attention, n, nn.Linear(D, D))
        self.attention.output = Holder()
        self.attention.output.dense = nn.Linear(D, D)
        self.layernorm_after = nn.LayerNorm(D, eps=c.ln_eps)
        self.intermediate = Holder()
        self.intermediate.dense = nn.Linear(D, c.Fm)
        self.output = Holder()
        self.output.dense = nn.Linear(c.Fm, D)
        self.heads = c.H

    def attn(self, x):
        n, N, D = x.shape
        hd = D // self.heads
        h = self.layernorm_before(x)
        at = self.attention.attention

        def split(t):
            return t.reshape(n, N, self.heads, hd).permute(0, 2, 1, 3)

        q, k, v = split(at.query(h)), split(at.key(h)), split(at.value(h))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        o = (p @ v).permute(0, 2, 1, 3).reshape(n, N, D)
        return self.attention.output.dense(o)

    def mlp(self, x):
        return self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class GroupedProjection(nn.Module):
    """1x1 grouped conv without bias, weight [out, in/G, 1, 1], as matrix products per group."""

    def __init__(self, cin, cout, groups):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, 1, 1))
        self.g = groups

    def forward(self, x):  # x [n, N, cin]
        cin = x.shape[-1]
        cout = self.weight.shape[0]
        xs = x.split(cin // self.g, dim=-1)
        ws = self.weight[:, :, 0, 0].split(cout // self.g, dim=0)
        return torch.cat([xi @ wi.t() for xi, wi in zip(xs, ws)], dim=-1)


class BatchNormTokens(nn.Module):
    """BatchNorm over channels with statistics over every token of every pair (BatchNorm2d semantics)."""

    def __init__(self, ch):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))
        self.register_buffer("running_mean", torch.zeros(ch))
        self.register_buffer("running_var", torch.ones(ch))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):  # [n, N, ch]
        if self.training:
            self.num_batches_tracked += 1
        y = F.batch_norm(x.reshape(-1, x.shape[-1]), self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, 0.1, 1e-5)
        return y.reshape(x.shape)


class Adapter(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, d = c.D, c.D // c.r
        self.my_tokens = nn.Parameter(torch.zeros(c.m, D))
        self.gate = nn.Parameter(torch.zeros(1))
        self.gate_av = nn.Parameter(torch.zeros(1))
        self.ln_before = nn.LayerNorm(D, eps=1e-5)
        self.down_sampler = GroupedProjection(D, d, c.G)
        self.up_sampler = GroupedProjection(d, D, c.G)
        self.ln_post = nn.LayerNorm(D, eps=1e-5)
        self.use_bn = c.bn
        if c.bn:
            self.bn1 = BatchNormTokens(d)
            self.bn2 = BatchNormTokens(D)

    def forward(self, x, y):
        tok = self.my_tokens.unsqueeze(0)
        a1 = torch.softmax(tok @ y.transpose(1, 2), dim=-1)        # [n, m, N']
        s = tok + a1 @ y                                           # [n, m, D]
        a2 = torch.softmax(x @ s.transpose(1, 2), dim=-1)          # [n, N, m]
        z = self.ln_before(x + self.gate_av * (a2 @ s))
        h = self.down_sampler(z)
        h = F.relu(self.bn1(h) if self.use_bn else h)
        o = self.up_sampler(h)
        if self.use_bn:
            o = self.bn2(o)
        return self.gate * self.ln_post(o)


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D = c.D
        self.vit = Holder()
        v = self.vit
        v.embeddings = Holder()
        v.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        v.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, c.nv, D))
        v.embeddings.patch_embeddings = Holder()
        v.embeddings.patch_embeddings.projection = nn.Conv2d(3, D, c.P, c.P)
        v.encoder = Holder()
        v.encoder.layer = nn.ModuleList([Block(c) for _ in range(c.L)])
        v.layernorm = nn.LayerNorm(D, eps=c.ln_eps)
        self.adapters = {}
        if c.fusion == "lavish":
            for name, part in (("vis_adapter_blocks_p1", "attn"), ("audio_adapter_blocks_p1", "attn"),
                               ("vis_adapter_blocks_p2", "mlp"), ("audio_adapter_blocks_p2", "mlp")):
                keys = [str(l) for l in c.layers] if part in c.sub else []
                setattr(self, name, nn.ModuleDict({k: Adapter(c) for k in keys}))
        width = (int(c.use_v) + int(c.use_a)) * D
        self.mlp_class = nn.Linear(width, c.hidden)
        self.stream = lambda t: t  # applied to the residual stream as it is written (bench/resid_bf16.py rounds it)
        self.mlp_class_2 = nn.Linear(c.hidden, c.C)

    def adapter(self, name, l):
        d = getattr(self, name, None)
        return d[str(l)] if d is not None and str(l) in d else None

    def embed(self, img, n_tokens):
        e = self.vit.embeddings
        x = e.patch_embeddings.projection(img).flatten(2).transpose(1, 2)
        x = torch.cat([e.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        pe = e.position_embeddings
        if n_tokens != pe.shape[1]:
            pe = F.interpolate(pe.transpose(1, 2), size=n_tokens, mode="linear", align_corners=False).transpose(1, 2)
        return x + pe

    def forward(self, frames, audio):
        c = self.c
        B, T = c.B, c.T
        xv = self.stream(self.embed(frames.reshape(B * T, 3, c.S, c.S), c.nv)) if c.use_v else None
        xa = None
        if c.use_a:
            img = audio.reshape(B * T, 1, c.A, c.M)[:, :, : (c.A // c.P) * c.P, : (c.M // c.P) * c.P]
            xa = self.stream(self.embed(img.expand(-1, 3, -1, -1), c.na))
        for l, blk in enumerate(self.vit.encoder.layer):
            # each sub-layer (attention, then MLP) with the adapters beside it, both computed from its input
            for part, sub in (("p1", blk.attn), ("p2", blk.mlp)):
                av, aa = self.adapter("vis_adapter_blocks_" + part, l), self.adapter("audio_adapter_blocks_" + part, l)
                rv = av(xv, xa) if av is not None else 0
                ra = aa(xa, xv) if aa is not None else 0
                if c.use_v:
                    xv = self.stream(xv + sub(xv) + rv)
                if c.use_a:
                    xa = self.stream(xa + sub(xa) + ra)
        feats = []
        if c.use_a:
            feats.append(self.vit.layernorm(xa[:, 0]))
        if c.use_v:
            feats.append(self.vit.layernorm(xv[:, 0]))
        f = torch.cat(feats, dim=-1).reshape(B, T, -1).mean(dim=1)
        return self.mlp_class_2(self.mlp_class(f))


def trainable(model):
    return [(n, p) for n, p in model.named_parameters() if not n.startswith("vit.")]


def step(model, frames, audio, labels):
    for n, p in model.named_parameters():
        p.requires_grad_(not n.startswith("vit."))
    model.train()
    logits = model(frames, audio)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out = {"logits": logits.float(), "loss": loss.detach().float().reshape([])}
    for n, p in trainable(model):
        out["grad." + n] = (p.grad if p.grad is not None else torch.zeros_like(p)).float()
    for n, b in model.named_buffers():
        out[n] = b.float() if b.is_floating_point() else b
    return out


def load_params(model, path):
    state = load(path)
    own = model.state_dict()
    for k in own:
        key = k if k in state else (k[4:] if k.startswith("vit.") and k[4:] in state else None)
        if key is None:
            sys.exit(f"{path}: missing tensor {k}")
        own[k].copy_(state[key].to(own[k].dtype).reshape(own[k].shape))


def randomize(model, gen):
    """Non-zero values everywhere and live gates, so every gradient path is exercised."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("layernorm_before.weight", "layernorm_after.weight", "layernorm.weight", "ln_before.weight",
                           "ln_post.weight", "bn1.weight", "bn2.weight")):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif n.endswith(".gate") or n.endswith(".gate_av"):
                p.copy_(0.3 + 0.5 * torch.rand(p.shape, generator=gen, dtype=torch.float64))
            elif n.endswith("my_tokens"):
                p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64))
            elif n.startswith("vit.") and n.endswith(".bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        for n, b in model.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen, dtype=torch.float64))
            elif n.endswith("running_var"):
                b.copy_(1.0 + 0.2 * torch.rand(b.shape, generator=gen, dtype=torch.float64))
            elif n.endswith("num_batches_tracked"):
                b.fill_(3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["dump", "fixture"])
    ap.add_argument("config")
    ap.add_argument("--params")
    ap.add_argument("--inputs")
    ap.add_argument("--out")
    ap.add_argument("--out-dir")
    ap.add_argument("--update-out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    c = Cfg(json.load(open(a.config)))
    torch.manual_seed(a.seed)
    model = Model(c).double()
    gen = torch.Generator().manual_seed(a.seed)
    if a.mode == "dump":
        if not (a.params and a.inputs and a.out):
            sys.exit("dump needs --params, --inputs and --out")
        load_params(model, a.params)
        inp = load(a.inputs)
        frames = inp["frames"].double() if c.use_v else None
        audio = inp["audio"].double() if c.use_a else None
        out = step(model, frames, audio, inp["labels"].long())
        save(a.out, out)
        if a.update_out:
            tr = json.load(open(a.config))["train"]
            adapters = [p for n, p in trainable(model) if not n.startswith("mlp_class")]
            head = [p for n, p in trainable(model) if n.startswith("mlp_class")]
            groups = [{"params": adapters, "lr": tr["lr"]}, {"params": head, "lr": tr["head_lr"]}]
            groups = [g for g in groups if g["params"]]
            opt_cls = torch.optim.AdamW if tr["optimizer"] == "adamw" else torch.optim.Adam
            opt = opt_cls(groups, betas=tuple(tr["betas"]), eps=tr["eps"], weight_decay=tr["weight_decay"])
            opt.step()
            save(a.update_out, {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()})
        print(f"loss {float(out['loss']):.8f}")
        return
    if not a.out_dir:
        sys.exit("fixture needs --out-dir")
    randomize(model, gen)
    params = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    # Round the parameters to float32 first so that the C code (fp32) and this reference see the same values.
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                v.copy_(v.float().double())
    inputs = {"labels": torch.randint(0, c.C, (c.B,), generator=gen)}
    if c.use_v:
        inputs["frames"] = torch.randn(c.B, c.T, 3, c.S, c.S, generator=gen, dtype=torch.float64).float()
    if c.use_a:
        inputs["audio"] = torch.randn(c.B, c.T, c.A, c.M, generator=gen, dtype=torch.float64).float()
    save(f"{a.out_dir}/params.safetensors", params)
    save(f"{a.out_dir}/inputs.safetensors", inputs)
    model.eval()
    with torch.no_grad():
        ev = model(inputs["frames"].double() if c.use_v else None, inputs["audio"].double() if c.use_a else None)
    save(f"{a.out_dir}/expected_eval.safetensors", {"logits": ev.float()})
    out = step(model, inputs.get("frames", torch.zeros(0)).double() if c.use_v else None,
               inputs["audio"].double() if c.use_a else None, inputs["labels"])
    save(f"{a.out_dir}/expected.safetensors", out)
    print(f"{a.out_dir}: loss {float(out['loss']):.8f}, {len(params)} parameter tensors")


if __name__ == "__main__":
    main()
