#!/usr/bin/env python3
"""Counts the launches of a CUDA emulator launch log (AVGEN_EMU_LAUNCHES, docs/emulator.md).

usage: launches.py LOG.tsv [--sms N] [--json]

Prints the kernel launches and cuBLASLt matmuls the log holds (one training step when the program ran --step),
the launches by kernel (count, blocks a launch, threads a block, dynamic shared memory), the matmuls by
description and shape (count, GFLOP), the kernels whose launches have fewer blocks than the GPU has SMs
(--sms, default 132: an H100 SXM): every launch costs the GPU a gap of its own, and these also leave SMs idle;
and the bytes copied (host to device, device to host, device to device) and set. --json prints the same as one
JSON object.
"""
import json
import signal
import sys


def usage(msg=None):
    if msg:
        print(f"launches.py: {msg}", file=sys.stderr)
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    path, sms, as_json = None, 132, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print(__doc__.strip())
            sys.exit(0)
        elif a == "--sms":
            if i + 1 >= len(argv):
                usage("--sms needs a number")
            try:
                sms = int(argv[i + 1])
            except ValueError:
                usage(f"--sms: not a number: {argv[i + 1]}")
            if sms < 1:
                usage("--sms must be at least 1")
            i += 1
        elif a == "--json":
            as_json = True
        elif a.startswith("-"):
            usage(f"unknown option {a}")
        elif path is None:
            path = a
        else:
            usage("one log at a time")
        i += 1
    if path is None:
        usage("no log given")
    return path, sms, as_json


def triple(s, what, line_no):
    parts = s.split(",")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"line {line_no}: {what} is not x,y,z: {s!r}")
    return tuple(int(p) for p in parts)


def read_log(path):
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        print(f"launches.py: cannot read {path}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    kernels, gemms, copies = [], [], []
    with f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["what", "name", "grid", "block", "smem", "captured"]:
            print(f"launches.py: {path} is not an AVGEN_EMU_LAUNCHES log (its first line is not the header)", file=sys.stderr)
            sys.exit(1)
        for n, line in enumerate(f, start=2):
            cols = line.rstrip("\n").split("\t")
            try:
                if len(cols) != 6:
                    raise ValueError(f"line {n}: {len(cols)} columns, not 6")
                if cols[0] == "kernel":
                    kernels.append((cols[1], triple(cols[2], "the grid", n), triple(cols[3], "the block", n), int(cols[4])))
                elif cols[0] == "gemm":
                    gemms.append((cols[1], triple(cols[2], "m,n,k", n), int(cols[3])))
                elif cols[0] in ("copy", "set"):
                    if not cols[2].isdigit():
                        raise ValueError(f"line {n}: the bytes of a {cols[0]} are not a number: {cols[2]!r}")
                    copies.append((cols[1] if cols[0] == "copy" else "set", int(cols[2])))
                else:
                    raise ValueError(f"line {n}: not a kernel, gemm, copy or set: {cols[0]!r}")
            except ValueError as e:
                print(f"launches.py: {path}: {e}", file=sys.stderr)
                sys.exit(1)
    return kernels, gemms, copies


def summarize(kernels, gemms, copies, sms):
    by_kernel = {}
    for name, g, b, smem in kernels:
        blocks, threads = g[0] * g[1] * g[2], b[0] * b[1] * b[2]
        k = by_kernel.setdefault(name, {"launches": 0, "blocks_min": blocks, "blocks_max": blocks, "threads": set(),
                                        "smem_max": 0, "under_sms": 0})
        k["launches"] += 1
        k["blocks_min"], k["blocks_max"] = min(k["blocks_min"], blocks), max(k["blocks_max"], blocks)
        k["threads"].add(threads)
        k["smem_max"] = max(k["smem_max"], smem)
        if blocks < sms:
            k["under_sms"] += 1
    for k in by_kernel.values():
        k["threads"] = sorted(k["threads"])
    by_gemm = {}
    for desc, (m, n, k_), batch in gemms:
        key = f"{desc} | m {m} n {n} k {k_} batch {batch}"
        e = by_gemm.setdefault(key, {"launches": 0, "gflop": 0.0})
        e["launches"] += 1
        e["gflop"] += 2.0 * m * n * k_ * batch / 1e9
    small = sum(k["under_sms"] for k in by_kernel.values())
    copied = {}
    for kind, nbytes in copies:
        e = copied.setdefault(kind, {"count": 0, "bytes": 0})
        e["count"] += 1
        e["bytes"] += nbytes
    return {
        "kernel_launches": len(kernels),
        "gemms": len(gemms),
        "launches": len(kernels) + len(gemms),
        "gemm_gflop": sum(e["gflop"] for e in by_gemm.values()),
        "sms": sms,
        "kernel_launches_under_sms": small,
        "kernels": by_kernel,
        "gemm_shapes": by_gemm,
        "copies": copied,
    }


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # (a reader that stops early, as head does)
    path, sms, as_json = parse_args(sys.argv[1:])
    kernels, gemms, copies = read_log(path)
    s = summarize(kernels, gemms, copies, sms)
    if as_json:
        json.dump(s, sys.stdout, indent=1)
        print()
        return
    print(f"{s['launches']} launches: {s['kernel_launches']} kernels, {s['gemms']} cuBLASLt matmuls "
          f"({s['gemm_gflop']:.1f} GFLOP)")
    print(f"kernel launches of fewer blocks than {sms} SMs: {s['kernel_launches_under_sms']}")
    print()
    print(f"{'launches':>8} {'blocks a launch':>17} {'threads':>8} {'smem':>7}  kernel")
    for name, k in sorted(s["kernels"].items(), key=lambda kv: (-kv[1]["launches"], kv[0])):
        blocks = str(k["blocks_min"]) if k["blocks_min"] == k["blocks_max"] else f"{k['blocks_min']}-{k['blocks_max']}"
        threads = ",".join(str(t) for t in k["threads"])
        print(f"{k['launches']:>8} {blocks:>17} {threads:>8} {k['smem_max']:>7}  {name}")
    print()
    print(f"{'launches':>8} {'GFLOP':>10}  cuBLASLt matmul")
    for key, e in sorted(s["gemm_shapes"].items(), key=lambda kv: (-kv[1]["launches"], kv[0])):
        print(f"{e['launches']:>8} {e['gflop']:>10.1f}  {key}")
    if s["copies"]:
        print()
        print(f"{'count':>8} {'MiB':>12}  copies (H2D: host to device, D2H, D2D) and sets")
        for kind, e in sorted(s["copies"].items()):
            print(f"{e['count']:>8} {e['bytes'] / 2**20:>12.1f}  {kind}")
    under = sorted(((k["under_sms"], n) for n, k in s["kernels"].items() if k["under_sms"]), reverse=True)
    if under:
        print()
        print(f"launches of fewer blocks than {sms} SMs, by kernel:")
        for c, n in under:
            print(f"{c:>8}  {n}")


if __name__ == "__main__":
    main()
