#!/usr/bin/env python3
"""PyTorch references of the patch encoders (tests/test_patch_encoder.cpp).

  patch_encoder_reference.py package FOLDER OUT.safetensors [--weights PTH] [--batch N] [--threads T]

FOLDER holds index.json {"count": n, "h": h, "w": w, "file": "patches.rgb"} and that file: n
RGB uint8 patches, each h x w x 3 row-major, one after another. For each patch, with nothing of
libramil's code or converted file involved:
  x = patch / 255 as (3, h, w) float32
  x = F.interpolate(x, (224, 224), mode="bilinear", align_corners=False, antialias=True)
  x = (255 x - 127) / 128        TensorFlow lite builder's MEAN_RGB 127, STDDEV_RGB 128
  f = mean over H, W of model.extract_features(x)   (after the head conv + BN + ReLU6)
with the package's own network: efficientnet_lite_pytorch.EfficientNet.from_pretrained(
"efficientnet-lite0", weights_path=PTH) in eval mode, BatchNorm unfolded, its static "same"
padding for 224. PTH defaults to where tools/setup_patch_encoder.sh extracts it:
$LIBRAMIL_EFFNET_DIR (default <repo>/.cache/effnet)/efficientnet-lite0-57934424.pth.
OUT gets "features" (n, 1280) float32 and, in its metadata, seconds_per_patch: the median over
3 runs of the forward (preprocessing included) divided by n, with T torch threads (default
torch's own choice).

  patch_encoder_reference.py folded ENCODER.safetensors BATCH.safetensors OUT.safetensors

Runs a converted (BN-folded) EfficientNet-Lite file on BATCH's "x" (B, 3, H, W) with
convert_weights.py's effnet_folded_forward (F.pad with TF "same" padding + F.conv2d), the forward
the converter checks against the package: OUT gets "features". For small random networks and
odd input sizes that no package model covers.
Exit status 1 with a message naming the file on any problem.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PTH = os.path.join(os.environ.get("LIBRAMIL_EFFNET_DIR") or os.path.join(REPO, ".cache", "effnet"),
                           "efficientnet-lite0-57934424.pth")
SIZE = 224


def read_patches(folder):
    import numpy as np
    idx_path = os.path.join(folder, "index.json")
    with open(idx_path, encoding="utf-8") as f:
        idx = json.load(f)
    n, h, w = int(idx["count"]), int(idx["h"]), int(idx["w"])
    data_path = os.path.join(folder, idx["file"])
    raw = np.fromfile(data_path, dtype=np.uint8)
    if raw.size != n * h * w * 3:
        raise SystemExit(f"patch_encoder_reference: {data_path} has {raw.size} bytes, expected {n}*{h}*{w}*3")
    return raw.reshape(n, h, w, 3)


def features(model, patches, batch):
    import torch
    import torch.nn.functional as F
    out = []
    with torch.no_grad():
        for s in range(0, patches.shape[0], batch):
            x = torch.from_numpy(patches[s:s + batch]).permute(0, 3, 1, 2).to(torch.float32) / 255.0
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
            x = (x * 255.0 - 127.0) / 128.0
            out.append(model.extract_features(x).mean(dim=(2, 3)))
    return torch.cat(out, 0).contiguous()


def run_package(a):
    import torch
    from safetensors.torch import save_file
    from efficientnet_lite_pytorch import EfficientNet
    if a.threads:
        torch.set_num_threads(a.threads)
    if not os.path.isfile(a.weights):
        print(f"patch_encoder_reference: {a.weights}: no such file (tools/setup_patch_encoder.sh)", file=sys.stderr)
        return 1
    with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained prints a line
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=a.weights)
    model.eval()
    patches = read_patches(a.folder)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        feats = features(model, patches, a.batch)
        times.append(time.perf_counter() - t0)
    per_patch = sorted(times)[1] / max(1, patches.shape[0])
    tmp = f"{a.output}.tmp.{os.getpid()}"
    save_file({"features": feats}, tmp, metadata={"seconds_per_patch": repr(per_patch),
                                                   "torch_threads": str(torch.get_num_threads()),
                                                   "torch": torch.__version__})
    os.replace(tmp, a.output)
    print(f"patch_encoder_reference: {patches.shape[0]} patches -> {tuple(feats.shape)}, "
          f"{per_patch * 1e3:.1f} ms/patch (torch {torch.__version__}, {torch.get_num_threads()} threads)",
          file=sys.stderr)
    return 0


def run_folded(a):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from convert_weights import effnet_folded_forward
    with safe_open(a.encoder, "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    x = load_file(a.batch_file)["x"]
    with torch.no_grad():
        y = effnet_folded_forward(t, json.loads(meta["libramil.stem"]), json.loads(meta["libramil.blocks"]), x)
    save_file({"features": y.contiguous()}, a.output)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("package")
    p.add_argument("folder")
    p.add_argument("output")
    p.add_argument("--weights", default=DEFAULT_PTH)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    q = sub.add_parser("folded")
    q.add_argument("encoder")
    q.add_argument("batch_file")
    q.add_argument("output")
    a = ap.parse_args(argv)
    return run_package(a) if a.mode == "package" else run_folded(a)


if __name__ == "__main__":
    sys.exit(main())
