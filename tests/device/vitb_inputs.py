#!/usr/bin/env python3
"""vitb_inputs.py OUT.safetensors [LABEL]: the fixed inputs of tests/device/run.sh's ViT-B/16 step (B = 1, T = 2: frames
[1, 2, 3, 224, 224] and audio [1, 2, 102, 128] drawn from N(0, 1) with seed 7, label 17 or LABEL), written by
tests/device/prepare.sh for the GPU machine and by tests/device/dryrun.sh for its stand-in of the same input shapes."""
import array, json, random, struct, sys
rng = random.Random(7)
def f32(n, f):
    return array.array("f", (f() for _ in range(n))).tobytes()
t = {"frames": ("F32", [1, 2, 3, 224, 224], f32(2 * 3 * 224 * 224, lambda: rng.gauss(0, 1))),
     "audio": ("F32", [1, 2, 102, 128], f32(2 * 102 * 128, lambda: rng.gauss(0, 1))),
     "labels": ("I64", [1], struct.pack("<q", int(sys.argv[2]) if len(sys.argv) > 2 else 17))}
h, off, blobs = {}, 0, []
for k in sorted(t):
    dt, sh, b = t[k]
    h[k] = {"dtype": dt, "shape": sh, "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
hj = json.dumps(h).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
