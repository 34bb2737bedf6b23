#!/usr/bin/env python3
"""fbank_ref.py: reference inputs and outputs for runtime/fbank.c from torchaudio.compliance.kaldi.fbank with
the LAVISH settings (MODEL.md section 5), written as one safetensors file that tests/test_fbank.c reads.

  fbank_ref.py fixtures OUT_DIR [--media DIR]  synthetic signals (tones, chirp, silence, noise, odd lengths),
                                               model windows of synthetic files and one real excerpt:
                                               OUT_DIR/ref.safetensors (committed: tests/fixtures/fbank/)
  fbank_ref.py live MEDIA_DIR OUT_FILE         every MEDIA_DIR/audio/*.ogg (or MEDIA_DIR/*.ogg): whole-file
                                               fbank and model windows every 0.1 s, plus a 0.7 s cut of each
                                               (a file shorter than the window)
Exit status 77 when torchaudio cannot be imported or the media folder has no .ogg file (CTest: skipped).

File layout (all float32 unless noted; names sorted, "__metadata__" holds sample_rate, mel_bins,
window_samples, target_rows, norm_mean, norm_std as strings):
  NAME.input [n], NAME.expected [frames, mel_bins]: fbank(NAME.input), no normalisation (rt_fbank_compute)
  NAME.file [n]: a raw 16 kHz mono file (mean NOT removed); NAME.centers int64 [k];
  NAME.windows [k, target_rows, mel_bins]: for each centre, the model window of (file - file.mean()):
      start = clamp(centre - w // 2, 0, max(0, n - w)), zero-padded to w, fbank, (x - mean) / (2 std),
      zero rows appended up to target_rows (rt_fbank_window)
Recordings are decoded with torchaudio.load (sox_io backend), averaged to mono and resampled to 16 kHz with
torchaudio.functional.resample in float32; the C side reads those very samples, so both see the same input.
Run with /usr/bin/python3 (Debian's python3-torch 1.13 and python3-torchaudio 0.13)."""
import glob
import json
import math
import os
import struct
import sys

SR = 16000
MEL = 128
WINDOW = 16000
TARGET = 102
NORM_MEAN = -4.1426
NORM_STD = 3.2001

try:
    import numpy as np
    import torch
    import torchaudio
    from torchaudio.compliance import kaldi
except Exception as e:  # noqa: BLE001 - any import failure means "no reference available"
    print(f"fbank_ref.py: torchaudio is not available ({e}): skipped")
    sys.exit(77)


def fbank(wave):
    """The LAVISH call on a 1-D float32 tensor."""
    return kaldi.fbank(wave.unsqueeze(0), htk_compat=True, sample_frequency=SR, use_energy=False,
                       window_type="hanning", num_mel_bins=MEL, dither=0.0, frame_shift=10)


def model_window(wave_dc, center):
    """MODEL.md section 1 + 5 for one video frame, on a waveform whose whole-file mean is already removed."""
    n = wave_dc.shape[0]
    start = min(max(center - WINDOW // 2, 0), max(0, n - WINDOW))
    seg = wave_dc[start:start + WINDOW]
    if seg.shape[0] < WINDOW:
        seg = torch.cat([seg, torch.zeros(WINDOW - seg.shape[0], dtype=seg.dtype)])
    fb = (fbank(seg) - NORM_MEAN) / (NORM_STD * 2)
    return torch.nn.functional.pad(fb, (0, 0, 0, TARGET - fb.shape[0]))


class Writer:
    def __init__(self):
        self.tensors = {}

    def add(self, name, array):
        array = np.ascontiguousarray(array)
        assert name not in self.tensors, name
        assert array.dtype in (np.float32, np.int64), array.dtype
        self.tensors[name] = array

    def add_compute(self, name, wave):
        self.add(name + ".input", wave.numpy())
        self.add(name + ".expected", fbank(wave).numpy())

    def add_windows(self, name, raw, centers):
        dc = raw - raw.mean()  # LAVISH: waveform - waveform.mean(), float32
        self.add(name + ".file", raw.numpy())
        self.add(name + ".centers", np.array(centers, dtype=np.int64))
        self.add(name + ".windows", torch.stack([model_window(dc, c) for c in centers]).numpy())

    def write(self, path):
        header = {"__metadata__": {"sample_rate": str(SR), "mel_bins": str(MEL), "window_samples": str(WINDOW),
                                   "target_rows": str(TARGET), "norm_mean": repr(NORM_MEAN),
                                   "norm_std": repr(NORM_STD), "generator": "tests/reference/fbank_ref.py, torch "
                                   + torch.__version__ + ", torchaudio " + torchaudio.__version__}}
        blobs, offset = [], 0
        for name in sorted(self.tensors):
            a = self.tensors[name]
            data = a.astype(a.dtype.newbyteorder("<")).tobytes()
            header[name] = {"dtype": "F32" if a.dtype == np.float32 else "I64", "shape": list(a.shape),
                            "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
        print(f"wrote {path}: {len(self.tensors)} tensors, {os.path.getsize(path)} bytes")


def t(n):
    return torch.arange(n, dtype=torch.float64) / SR


def tone(freq, amp, n, phase=0.0):
    return (amp * torch.sin(2 * math.pi * freq * t(n) + phase)).float()


def synthetic(w):
    g = torch.Generator().manual_seed(20240527)
    noise = lambda n, std: (std * torch.randn(n, generator=g, dtype=torch.float64)).float()  # noqa: E731
    w.add_compute("tone440_half", tone(440.0, 0.5, 16000))
    w.add_compute("tone1000_quiet", tone(1000.0, 1e-4, 8000, 0.3))
    w.add_compute("tone3000_fullscale", tone(3000.0, 0.999, 8000))
    w.add_compute("tone7900_near_nyquist", tone(7900.0, 0.3, 8000))
    w.add_compute("tone1234_5_with_dc", (0.3 + tone(1234.5, 0.25, 8000).double()).float())
    tt = t(16000)  # linear chirp 50 Hz -> 7950 Hz over 1 s
    w.add_compute("chirp", (0.7 * torch.sin(2 * math.pi * (50.0 * tt + 0.5 * 7900.0 * tt * tt))).float())
    w.add_compute("silence", torch.zeros(4000))
    w.add_compute("white_noise", noise(8000, 0.1).clamp(-1, 1))
    w.add_compute("noise_at_floor", noise(4000, 2e-5))
    w.add_compute("mix_loud_quiet", (tone(300.0, 0.6, 8000).double() + tone(5000.0, 1e-3, 8000).double()
                                     + noise(8000, 0.05).double()).float())
    clicks = torch.zeros(4000)
    clicks[::97] = 0.9
    w.add_compute("clicks", clicks)
    w.add_compute("square220", (0.5 * torch.sign(torch.sin(2 * math.pi * 220.0 * t(4000)))).float())
    for n in (400, 559, 560, 1234):
        w.add_compute(f"len{n}", noise(n, 0.2))
    # model windows: a 1.6 s file (start, middle, end clamps) and a 0.6 s file (zero-padded window)
    n = 25600
    long_file = (0.05 + 0.4 * torch.sin(2 * math.pi * (100.0 * t(n) + 1500.0 * t(n) ** 2))
                 + noise(n, 0.02).double()).float()
    w.add_windows("synth_long", long_file, [0, 12800, 25599])
    w.add_windows("synth_short", (0.2 + tone(660.0, 0.3, 9600).double()).float(), [4800])


def load_16k_mono(path):
    wave, sr = torchaudio.load(path)
    wave = wave.mean(0)
    if sr != SR:
        wave = torchaudio.functional.resample(wave, sr, SR)
    return wave.contiguous()


def media_files(media):
    files = sorted(glob.glob(os.path.join(media, "audio", "*.ogg"))) or sorted(glob.glob(os.path.join(media, "*.ogg")))
    return files


def main(argv):
    if len(argv) >= 2 and argv[0] == "fixtures":
        out_dir = argv[1]
        media = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "media")
        if len(argv) == 4 and argv[2] == "--media":
            media = argv[3]
        w = Writer()
        synthetic(w)
        drums = [f for f in media_files(media) if os.path.basename(f) == "drums.ogg"]
        if drums:
            wave = load_16k_mono(drums[0])[:20000]  # 1.25 s excerpt
            w.add_windows("real_drums", wave, [0, 20000])
        else:
            print(f"note: {media}/audio/drums.ogg not found: no real excerpt in the fixture")
        os.makedirs(out_dir, exist_ok=True)
        w.write(os.path.join(out_dir, "ref.safetensors"))
        return 0
    if len(argv) == 3 and argv[0] == "live":
        files = media_files(argv[1])
        if not files:
            print(f"fbank_ref.py: no .ogg file under {argv[1]}: skipped")
            return 77
        w = Writer()
        for path in files:
            name = os.path.splitext(os.path.basename(path))[0]
            raw = load_16k_mono(path)
            w.add_compute(name, raw - raw.mean())
            n = raw.shape[0]
            centers = sorted(set([round(k * 0.1 * SR) for k in range(int(n / (0.1 * SR)) + 1)] + [n]))
            w.add_windows(name, raw, centers)
            w.add_windows(name + "_cut0.7s", raw[: int(0.7 * SR)].contiguous(), [0, int(0.35 * SR)])
        w.write(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
