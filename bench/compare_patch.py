#!/usr/bin/python3
"""`libramil patch` against the Python reference of the same recipe (tools/slide_reference.py:
openslide-python, numpy, scipy, scikit-image), per slide, same machine, one thread each.

Two figures per slide:
  * pipeline seconds: the reference's median over --repeats fresh processes of its pipeline
    (thumbnail read, segmentation, tiling; slide already open, outputs not counted)
    against libramil's per-slide seconds from summary.csv (slide opening, thumbnail, segmentation,
    tiling AND writing every output: thumbnail and contour JPEGs, GeoJSON, coords h5), median over
    --repeats fresh runs: a comparison that favours the reference;
  * segmentation alone (the tissue recipe on the thumbnail already read): the reference's
    seconds_segmentation against libramil's seconds_segment (the slide's status JSON), medians;
  * whole process: wall seconds and peak RSS (GNU time's %M) of one command each, Python's
    interpreter start and imports included.

usage: /usr/bin/python3 bench/compare_patch.py --libramil build/libramil [--repeats 5]
           [--patch-size 256] [SLIDE[:MPP] ...]   (default: the two slides in tests/data/slides)
"""
import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SLIDES = [os.path.join(REPO, "tests/data/slides/cmu-1-small-region.svs"),
                  os.path.join(REPO, "tests/data/slides/tcga-cr-7395-01a-01-ts1.svs") + ":0.5"]


def timed(cmd, env=None):
    """Wall seconds and peak RSS (MB) of one command through GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd, check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        return wall, int(tf.read().strip().splitlines()[-1]) / 1024.0


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = next(l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name"))
        isa = "AVX-512" if "avx512f" in info else "AVX2" if "avx2" in info else "no AVX2"
        return f"{name} ({isa})"
    except (OSError, StopIteration):
        return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--libramil", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--patch-size", type=int, default=256)
    ap.add_argument("slides", nargs="*")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    rows = []
    for spec in a.slides or DEFAULT_SLIDES:
        path, _, mpp = spec.partition(":")
        mpp_args = ["--mpp", mpp] if mpp else []
        name = os.path.splitext(os.path.basename(path))[0]
        with tempfile.TemporaryDirectory() as tmp:
            # The reference: --repeats fresh processes (a repeat inside one process would read
            # the thumbnail level from OpenSlide's tile cache), each timing its pipeline once.
            ref_runs, ref_walls, ref_rss = [], [], []
            for r in range(a.repeats):
                ref_out = os.path.join(tmp, f"ref{r}")
                wall, rss = timed([sys.executable, os.path.join(REPO, "tools/slide_reference.py"), path, "--out", ref_out,
                                   "--patch-size", str(a.patch_size), "--repeats", "1"] + mpp_args, env)
                with open(os.path.join(ref_out, "result.json")) as f:
                    ref_runs.append(json.load(f))
                ref_walls.append(wall)
                ref_rss.append(rss)
            ref = {"patches": ref_runs[0]["patches"],
                   "seconds_total": statistics.median(r["seconds_total"] for r in ref_runs),
                   "seconds_segmentation": statistics.median(r["seconds_segmentation"] for r in ref_runs)}
            ref_wall, ref_rss = statistics.median(ref_walls), max(ref_rss)
            ours_s, ours_seg, ours_wall, ours_rss = [], [], [], []
            for r in range(a.repeats):
                out = os.path.join(tmp, f"ours{r}")
                wall, rss = timed([a.libramil, "patch", "--slides", path, "--out", out, "--threads", "1",
                                   "--patch-size", str(a.patch_size)] + mpp_args, env)
                with open(os.path.join(out, "summary.csv")) as f:
                    rec = next(csv.DictReader(f))
                ours_s.append(float(rec["seconds"]))
                cfg = rec["patch_config"]
                with open(os.path.join(out, cfg, "status", name + ".json")) as f:
                    ours_seg.append(json.load(f)["seconds_segment"])
                ours_wall.append(wall)
                ours_rss.append(rss)
            ours_pipeline = statistics.median(ours_s)
            rows.append({
                "slide": name, "patches_ours": int(rec["patches"]), "patches_reference": ref["patches"],
                "reference_pipeline_s": round(ref["seconds_total"], 4), "ours_pipeline_s": round(ours_pipeline, 4),
                "pipeline_speedup": round(ref["seconds_total"] / ours_pipeline, 2),
                "reference_segmentation_s": round(ref["seconds_segmentation"], 4),
                "ours_segmentation_s": round(statistics.median(ours_seg), 4),
                "segmentation_speedup": round(ref["seconds_segmentation"] / statistics.median(ours_seg), 2),
                "reference_process_s": round(ref_wall, 3), "ours_process_s": round(statistics.median(ours_wall), 3),
                "reference_peak_rss_mb": round(ref_rss, 1), "ours_peak_rss_mb": round(max(ours_rss), 1),
            })
    print(json.dumps({"cpu": cpu_name(), "threads": 1, "repeats": a.repeats, "patch_size": a.patch_size,
                      "slides": rows}, indent=1))


if __name__ == "__main__":
    main()
