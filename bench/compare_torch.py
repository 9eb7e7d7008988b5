#!/usr/bin/python3
"""Libra-MIL training step and inference forward: libramil vs the PyTorch anchor, same shapes,
same machine, same thread count, in one script run (issue: performance).

The anchor is tools/libramil_reference.py (SPEC.md in PyTorch, eager, AdamW), run in a
subprocess per case so that its peak RSS is its own. Ours is `libramil bench train-step`.
Prints a table of medians and ratios (anchor / ours: > 1 means we are faster).

usage: /usr/bin/python3 bench/compare_torch.py --libramil build/libramil
           [--instances 8000] [--modes paper,reference] [--threads 2] [--repeats 5]
"""
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
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    print(f"threads={a.threads} dim={a.dim} Kt=46 Kv=10 C=3 repeats={a.repeats}; torch anchor with {openblas_env.describe()}")
    print("| mode | N | torch step ms | ours step ms | step ratio | torch fwd ms | ours fwd ms | fwd ratio | torch peak RSS MB | ours peak RSS MB | ours peak tensor MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in a.modes.split(","):
        for n in a.instances.split(","):
            ref = last_json([sys.executable, os.path.join(ROOT, "tools", "libramil_reference.py"), "bench", "--mode", mode,
                             "--instances", n, "--dim", str(a.dim), "--threads", str(a.threads), "--repeats", str(a.repeats)], env)
            ours = last_json([a.libramil, "bench", "train-step", "--mode", mode, "--instances", n, "--dim", str(a.dim),
                              "--threads", str(a.threads), "--repeats", str(a.repeats)], env)
            print(f"| {mode} | {n} | {ref['median_ms']:.1f} | {ours['median_ms']:.1f} | {ref['median_ms'] / ours['median_ms']:.2f} | "
                  f"{ref['forward_median_ms']:.1f} | {ours['forward_median_ms']:.1f} | "
                  f"{ref['forward_median_ms'] / ours['forward_median_ms']:.2f} | {ref['peak_rss_bytes'] / 2**20:.0f} | "
                  f"{ours['peak_rss_bytes'] / 2**20:.0f} | {ours['peak_bytes'] / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
