#!/usr/bin/python3
"""Libra-MIL training step and inference forward: libramil vs the PyTorch anchor, same shapes,
same machine, same thread count, in one script run (issue: performance).

The anchor is tools/libramil_reference.py (SPEC.md in PyTorch, eager, AdamW), run in a
subprocess per case so that its peak RSS is its own. Ours is `libramil bench train-step`.
Prints a table of medians and ratios (anchor / ours: > 1 means we are faster).

usage: /usr/bin/python3 bench/compare_torch.py --libramil build/libramil
           [--instances 8000] [--modes paper,reference] [--threads 2] [--repeats 5] [--rounds 1]
           [--device cpu|cuda]

--device cuda runs both on the GPU (model, data and optimizer state on the device; every timed
step ends with a synchronisation); the memory columns then compare the device allocators'
peaks (torch.cuda.max_memory_allocated vs libramil's caching allocator), not RSS.

--rounds R runs the anchor and ours alternately R times per case and prints one row per round
plus a "median" row (medians over the rounds of each column, ratios as the median of the
per-round ratios): on a shared 2-core VM single runs of the anchor vary by up to 1.5x.
"""
import statistics
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def last_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libramil", required=True)
    ap.add_argument("--instances", default="8000")
    ap.add_argument("--modes", default="paper,reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    gpu = a.device.startswith("cuda")
    print(f"device={a.device} threads={a.threads} dim={a.dim} Kt=46 Kv=10 C=3 repeats={a.repeats}; "
          f"torch anchor with {openblas_env.describe()}")
    if gpu:
        print("| mode | N | torch step ms | ours step ms | step ratio | torch fwd ms | ours fwd ms | fwd ratio | torch peak device MB | ours peak device MB | memory ratio ours/torch |")
    else:
        print("| mode | N | torch step ms | ours step ms | step ratio | torch fwd ms | ours fwd ms | fwd ratio | torch peak RSS MB | ours peak RSS MB | ours peak tensor MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    def row(label, n, r, o, step_ratio, fwd_ratio):
        if gpu:
            mem = f"{r['peak_bytes'] / 2**20:.0f} | {o['peak_bytes'] / 2**20:.0f} | {o['peak_bytes'] / max(r['peak_bytes'], 1):.2f}"
        else:
            mem = f"{r['peak_rss_bytes'] / 2**20:.0f} | {o['peak_rss_bytes'] / 2**20:.0f} | {o['peak_bytes'] / 2**20:.0f}"
        print(f"| {label} | {n} | {r['median_ms']:.1f} | {o['median_ms']:.1f} | {step_ratio:.2f} | "
              f"{r['forward_median_ms']:.1f} | {o['forward_median_ms']:.1f} | {fwd_ratio:.2f} | {mem} |", flush=True)

    for mode in a.modes.split(","):
        for n in a.instances.split(","):
            refs, ours_runs = [], []
            for rnd in range(a.rounds):
                ref = last_json([sys.executable, os.path.join(ROOT, "tools", "libramil_reference.py"), "bench", "--mode", mode,
                                 "--instances", n, "--dim", str(a.dim), "--threads", str(a.threads), "--repeats", str(a.repeats),
                                 "--device", a.device], env)
                ours = last_json([a.libramil, "bench", "train-step", "--mode", mode, "--instances", n, "--dim", str(a.dim),
                                  "--threads", str(a.threads), "--repeats", str(a.repeats), "--device", a.device], env)
                refs.append(ref)
                ours_runs.append(ours)
                label = mode if a.rounds == 1 else f"{mode} (round {rnd + 1})"
                row(label, n, ref, ours, ref["median_ms"] / ours["median_ms"], ref["forward_median_ms"] / ours["forward_median_ms"])
            if a.rounds > 1:
                med = lambda runs, k: statistics.median(x[k] for x in runs)  # noqa: E731
                keys = ("median_ms", "forward_median_ms", "peak_rss_bytes", "peak_bytes")
                r = {k: med(refs, k) for k in keys if k in refs[0]}
                o = {k: med(ours_runs, k) for k in keys}
                step_ratio = statistics.median(x["median_ms"] / y["median_ms"] for x, y in zip(refs, ours_runs))
                fwd_ratio = statistics.median(x["forward_median_ms"] / y["forward_median_ms"] for x, y in zip(refs, ours_runs))
                row(f"**{mode} median of {a.rounds}**", n, r, o, step_ratio, fwd_ratio)

if __name__ == "__main__":
    main()
