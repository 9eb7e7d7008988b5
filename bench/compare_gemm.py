#!/usr/bin/python3
"""Our SGEMM (bench/gemm_bench) vs torch.mm (Debian's torch, OpenBLAS) on 2 threads.

Shape convention: "MxNxK" means C(M,N) = A(M,K) @ B(K,N), i.e. M rows of output, N columns,
inner dimension K -- the same order gemm_bench takes its arguments in. The issue's shapes
8192x512x512 (tall output), 512x512x8192 (long inner dimension) and 2048x2048x2048 are read
this way.

usage: /usr/bin/python3 bench/compare_gemm.py --bench BUILD_DIR/gemm_bench [--repeats 10]
Prints a table; writes nothing.
"""
import argparse
import json
import os
import subprocess
import sys
import time

THREADS = 2
# Set before torch (and its OpenBLAS / OpenMP runtimes) are loaded.
os.environ["OMP_NUM_THREADS"] = str(THREADS)
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas_env  # noqa: E402  (sets OPENBLAS_CORETYPE before torch loads OpenBLAS)
import torch  # noqa: E402

SHAPES = [(8192, 512, 512), (512, 512, 8192), (2048, 2048, 2048)]  # (M, N, K)


def time_torch(M, N, K, repeats):
    """Median wall time (ms) of torch.mm on float32 A(M,K) @ B(K,N), after a warm-up."""
    torch.manual_seed(0)
    a = torch.rand(M, K) * 2 - 1
    b = torch.rand(K, N) * 2 - 1
    out = torch.empty(M, N)
    torch.mm(a, b, out=out)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    n = len(times)
    return times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])


def time_ours(bench, M, N, K, repeats):
    """Runs gemm_bench and returns its final JSON line as a dict."""
    out = subprocess.run([bench, str(M), str(N), str(K), str(repeats), str(THREADS)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to the built gemm_bench executable")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)

    rows = []
    kernel = "?"
    for M, N, K in SHAPES:
        flop = 2.0 * M * N * K
        t_ms = time_torch(M, N, K, args.repeats)
        ours = time_ours(args.bench, M, N, K, args.repeats)
        kernel = ours["kernel"]
        g_torch = flop / t_ms * 1e-6
        g_ours = ours["gflops"]
        rows.append((f"{M}x{N}x{K}", g_ours, g_torch, g_ours / g_torch))

    print(f"threads={THREADS}  torch {torch.__version__} ({openblas_env.describe()})  ours: {kernel}  "
          f"(median of {args.repeats}, shape = MxNxK, C(M,N) = A(M,K) B(K,N))")
    print("| shape (MxNxK) | ours GFLOP/s | torch GFLOP/s | ours/torch |")
    print("|---|---:|---:|---:|")
    for shape, g_ours, g_torch, ratio in rows:
        print(f"| {shape} | {g_ours:.1f} | {g_torch:.1f} | {ratio:.2f} |")
    worst = min(r[3] for r in rows)
    print(f"min ratio {worst:.2f} (target >= 0.80): {'OK' if worst >= 0.8 else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
