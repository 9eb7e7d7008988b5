#!/usr/bin/python3
"""`libramil extract` against a PyTorch extraction loop over the same patches, same encoder
(EfficientNet-Lite0, ImageNet weights), same threads, same machine.

The patches: `libramil patch` on the two shipped slides (cmu-1-small-region at 20x; the TCGA
slide with --mpp 0.5 at 20x), written once into a scratch folder. Then, each --repeats times in
a fresh process:
  * libramil: `libramil extract --slides ... --patches ... --threads T --readers R --batch B
    --overwrite` (slide open, reading, preprocessing, encoder, writing the features files);
  * PyTorch: this script's `torch` mode: a torch DataLoader with R workers reading the same
    regions with openslide-python (same level rule as docs/extract.md), F.interpolate(antialias)
    to 224, TF lite's (255x - 127) / 128, the package's own EfficientNet (efficientnet_lite_pytorch,
    eval mode, torch.no_grad, torch.set_num_threads(T)), mean-pooled 1280-d features, saved as
    .npy. The model is loaded before the clock starts; libramil's wall time includes its start.
Figures: patches/s (median over repeats), the ratio, peak RSS (GNU time's %M) of each process,
and the per-patch cosine similarity between the two feature sets (min, over every patch).

usage: /usr/bin/python3 bench/compare_extract.py --libramil build/libramil [--threads 2]
           [--readers 2] [--batch 32] [--repeats 3]
Needs tools/setup.sh's EfficientNet-Lite0 (package in .venv, .pth in .cache/effnet); run it with
the venv's python (it has the package): .venv/bin/python bench/compare_extract.py ...
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLIDES = [("cmu-1-small-region", None), ("tcga-cr-7395-01a-01-ts1", 0.5)]
PTH = os.path.join(os.environ.get("LIBRAMIL_EFFNET_DIR") or os.path.join(REPO, ".cache", "effnet"),
                   "efficientnet-lite0-57934424.pth")
CONFIG = "20x_256px_0px_overlap"


def slide_path(name):
    return os.path.join(REPO, "tests", "data", "slides", name + ".svs")


def cpu_name():
    with open("/proc/cpuinfo") as f:
        info = f.read()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    isa = "AVX-512" if "avx512f" in info else ("AVX2" if "avx2" in info else "no AVX2")
    return f"{model}, {isa}, {os.cpu_count()} cores"


def timed(cmd):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"compare_extract: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        return wall, int(tf.read().strip().splitlines()[-1]) / 1024.0, r.stdout


def plan(slide, p0, p):
    """docs/extract.md's level rule: coarsest level with downsample <= p0 / p (1% slack)."""
    want = p0 / p
    level = 0
    for l, ds in enumerate(slide.level_downsamples):
        if ds <= want * 1.01 and ds >= slide.level_downsamples[level]:
            level = l
    return level, max(1, int(round(p0 / slide.level_downsamples[level])))


class Regions:
    """A torch Dataset of (slide, coords) regions as RGB uint8 arrays (opened per worker)."""

    def __init__(self, items):
        self.items = items  # (slide path, x, y, level, size)
        self.handles = {}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import numpy as np
        import openslide
        path, x, y, level, size = self.items[i]
        if path not in self.handles:
            self.handles[path] = openslide.OpenSlide(path)
        rgba = np.asarray(self.handles[path].read_region((x, y), level, (size, size)), dtype=np.float32)
        a = rgba[:, :, 3:4] / 255.0
        return np.round(rgba[:, :, :3] * a + 255.0 * (1 - a)).astype(np.uint8)


def torch_mode(a):
    import contextlib
    import io
    import h5py
    import numpy as np
    import openslide
    import torch
    import torch.nn.functional as F
    from efficientnet_lite_pytorch import EfficientNet
    torch.set_num_threads(a.threads)
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=PTH)
    model.eval()
    t0 = time.perf_counter()
    out = {}
    for name, _ in SLIDES:
        with h5py.File(os.path.join(a.patches, CONFIG, "patches", name + "_patches.h5"), "r") as f:
            coords = f["coords"][:]
            p0, p = int(f["coords"].attrs["patch_size_level0"]), int(f["coords"].attrs["patch_size"])
        level, size = plan(openslide.OpenSlide(slide_path(name)), p0, p)
        ds = Regions([(slide_path(name), int(x), int(y), level, size) for x, y in coords])
        loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, num_workers=a.readers)
        feats = []
        with torch.no_grad():
            for batch in loader:
                x = batch.permute(0, 3, 1, 2).to(torch.float32) / 255.0
                x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
                x = (x * 255.0 - 127.0) / 128.0
                feats.append(model.extract_features(x).mean(dim=(2, 3)))
        out[name] = torch.cat(feats).numpy()
    seconds = time.perf_counter() - t0
    for name, f in out.items():
        np.save(os.path.join(a.out, name + ".npy"), f)
    print(json.dumps({"seconds": seconds, "patches": int(sum(f.shape[0] for f in out.values())),
                      "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="compare", choices=["compare", "torch"])
    ap.add_argument("--libramil", default=os.path.join(REPO, "build", "libramil"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--patches")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.mode == "torch":
        return torch_mode(a)
    import h5py
    import numpy as np
    work = tempfile.mkdtemp(prefix="compare_extract.")
    patches = os.path.join(work, "patches")
    for name, mpp in SLIDES:
        cmd = [a.libramil, "patch", "--slides", slide_path(name), "--out", patches]
        if mpp:
            cmd += ["--mpp", str(mpp)]
        subprocess.run(cmd, check=True, capture_output=True)
    ours, theirs = [], []
    n = 0
    for r in range(a.repeats):
        wall, rss, _ = timed([a.libramil, "extract", "--slides"] + [slide_path(s) for s, _ in SLIDES] +
                             ["--patches", patches, "--out", os.path.join(work, "ours"), "--threads", str(a.threads),
                              "--readers", str(a.readers), "--batch", str(a.batch), "--overwrite"])
        ours.append((wall, rss))
        tdir = os.path.join(work, "torch")
        os.makedirs(tdir, exist_ok=True)
        twall, trss, tout = timed([sys.executable, os.path.abspath(__file__), "torch", "--patches", patches, "--out", tdir,
                                   "--threads", str(a.threads), "--readers", str(a.readers), "--batch", str(a.batch)])
        t = json.loads(tout.strip().splitlines()[-1])
        n = t["patches"]
        theirs.append((t["seconds"], twall, trss))
    cos = []
    for name, _ in SLIDES:
        with h5py.File(os.path.join(work, "ours", CONFIG, "features_efficientnet-lite0", name + ".h5"), "r") as f:
            fo = f["features"][:].astype(np.float64)
        ft = np.load(os.path.join(work, "torch", name + ".npy")).astype(np.float64)
        cos.extend((fo * ft).sum(1) / (np.linalg.norm(fo, axis=1) * np.linalg.norm(ft, axis=1)))
    ours_s = statistics.median(w for w, _ in ours)
    torch_loop = statistics.median(s for s, _, _ in theirs)
    torch_proc = statistics.median(w for _, w, _ in theirs)
    print(f"# compare_extract: {n} patches of the two shipped slides, EfficientNet-Lite0, batch {a.batch}, "
          f"{a.threads} threads, {a.readers} readers, median of {a.repeats}; {cpu_name()}; torch {t['torch']}")
    print("| | seconds | patches/s | peak RSS MB |")
    print("|---|---|---|---|")
    print(f"| libramil extract (whole process) | {ours_s:.2f} | {n / ours_s:.1f} | {max(r for _, r in ours):.0f} |")
    print(f"| PyTorch loop (model loaded; loop only) | {torch_loop:.2f} | {n / torch_loop:.1f} | {max(r for _, _, r in theirs):.0f} |")
    print(f"| PyTorch (whole process) | {torch_proc:.2f} | {n / torch_proc:.1f} | |")
    print(f"ratio (PyTorch loop seconds / libramil whole-process seconds): {torch_loop / ours_s:.2f}x (aim >= 1.5x)")
    print(f"per-patch cosine similarity libramil vs PyTorch: min {min(cos):.10f} (1 - min = {1 - min(cos):.2e}), "
          f"mean {np.mean(cos):.10f} over {len(cos)} patches")


if __name__ == "__main__":
    sys.exit(main())
