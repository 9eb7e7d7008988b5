#!/usr/bin/python3
"""Our SGEMM (bench/gemm_bench) vs torch.mm (Debian's torch, OpenBLAS) on 2 threads.

Shape convention: "MxNxK" means C(M,N) = A(M,K) @ B(K,N), i.e. M rows of output, N columns,
inner dimension K -- the same order gemm_bench takes its arguments in; tA / tB: the operand is
stored transposed (A as (K, M), B as (N, K)), as in the training step.

Two tables:
- large: 8192x512x512 (tall output), 512x512x8192 (long inner dimension) and 2048^3, ours
  against OpenBLAS (target >= 0.9x, issue 27);
- skinny: the Libra-MIL step's skinny products at N = 8000 instances (D = 512; 24 = 3 class
  queries x 8 heads; 80 = 10 + 46 prototypes + the 24 key queries, one product since step 2
  carries step 8's keys; the 46 x 10 transport plan), ours against OpenBLAS and as a share of our
  own large-GEMM rate (the best of the large table; target >= 80%).

Each figure is the median (--stat median, the default) or the fastest (--stat best) of --repeats
calls, the same statistic for both sides; with --rounds R > 1 the anchor and ours run alternately
R times per shape and each column is the median over the rounds (single runs move by tens of
percent on a shared VM; the fastest call is the steadier figure there, for short products most). LIBRAMIL_CPU_ISA=avx2 times our AVX2 kernels and (bench/
openblas_env.py) OpenBLAS's Haswell kernels on any x86 host.

usage: /usr/bin/python3 bench/compare_gemm.py --bench BUILD_DIR/gemm_bench [--repeats 10]
           [--rounds 1] [--stat median|best] [--tables large,skinny]
Prints the tables; writes nothing.
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

LARGE = [(8192, 512, 512, 0, 0), (512, 512, 8192, 0, 0), (2048, 2048, 2048, 0, 0)]  # (M, N, K, tA, tB)
# The step's skinny products (ops/cpu/gemm_skinny.h names them): similarities and keys
# V [P; Qk]^T, attention gradient dPooled V^T, pooled attn V, dV += attn^T dPooled,
# d[P; Qk] = dS^T V, dV = dS [P; Qk], the class rows through 512x512 Linear layers, St T^T.
SKINNY = [(8000, 80, 512, 0, 1), (24, 8000, 512, 0, 1), (24, 512, 8000, 0, 0), (8000, 512, 24, 1, 0),
          (80, 512, 8000, 1, 0), (8000, 512, 80, 0, 0), (3, 512, 512, 0, 1), (8000, 46, 10, 0, 0)]


def operands(M, N, K, ta, tb):
    """torch operands of op(A) (M,K) and op(B) (K,N), stored transposed where asked."""
    torch.manual_seed(0)
    a = (torch.rand(K, M) * 2 - 1).t() if ta else torch.rand(M, K) * 2 - 1
    b = (torch.rand(N, K) * 2 - 1).t() if tb else torch.rand(K, N) * 2 - 1
    return a, b


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def time_torch(M, N, K, ta, tb, repeats, stat):
    """Median or fastest wall time (ms) of torch.mm on float32 op(A)(M,K) @ op(B)(K,N), after a warm-up."""
    a, b = operands(M, N, K, ta, tb)
    out = torch.empty(M, N)
    torch.mm(a, b, out=out)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times) if stat == "best" else median(times)


def time_ours(bench, M, N, K, ta, tb, repeats):
    """Runs gemm_bench and returns its final JSON line as a dict."""
    flags = (["--ta"] if ta else []) + (["--tb"] if tb else [])
    out = subprocess.run([bench, str(M), str(N), str(K), str(repeats), str(THREADS)] + flags,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(bench, shapes, repeats, rounds, stat):
    """[(label, ours GFLOP/s, torch GFLOP/s)] for each shape, medians over the rounds; and our kernel's name."""
    rows, kernel = [], "?"
    for M, N, K, ta, tb in shapes:
        flop = 2.0 * M * N * K
        g_ours, g_torch = [], []
        for _ in range(rounds):
            g_torch.append(flop / time_torch(M, N, K, ta, tb, repeats, stat) * 1e-6)
            ours = time_ours(bench, M, N, K, ta, tb, repeats)
            kernel = ours["kernel"]
            g_ours.append(flop / (ours["min_ms"] if stat == "best" else ours["median_ms"]) * 1e-6)
        label = f"{M}x{N}x{K}" + (" tA" if ta else "") + (" tB" if tb else "")
        rows.append((label, median(g_ours), median(g_torch)))
    return rows, kernel


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to the built gemm_bench executable")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--stat", choices=["median", "best"], default="median",
                    help="per round: the median or the fastest of --repeats calls, for both sides")
    ap.add_argument("--tables", default="large,skinny", help="large, skinny or both (comma-separated)")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    tables = set(args.tables.split(","))

    large, kernel = measure(args.bench, LARGE, args.repeats, args.rounds, args.stat)
    print(f"threads={THREADS}  torch {torch.__version__} ({openblas_env.describe()})  ours: {kernel}  "
          f"({args.stat} of {args.repeats} calls, median of {args.rounds} round(s); shape = MxNxK, C(M,N) = op(A) op(B))")
    load = os.getloadavg()[0]
    print(f"load average at the end of the large table: {load:.2f}")
    if "large" in tables:
        print("| shape (MxNxK) | ours GFLOP/s | torch GFLOP/s | ours/torch |")
        print("|---|---:|---:|---:|")
        for shape, g_ours, g_torch in large:
            print(f"| {shape} | {g_ours:.1f} | {g_torch:.1f} | {g_ours / g_torch:.2f} |")
        worst = min(g / t for _, g, t in large)
        print(f"min ratio {worst:.2f} (target >= 0.90): {'OK' if worst >= 0.9 else 'BELOW TARGET'}")
    if "skinny" in tables:
        rate = max(g for _, g, _ in large)
        skinny, _ = measure(args.bench, SKINNY, args.repeats, args.rounds, args.stat)
        print(f"\nskinny products of the step (N = 8000); 'of large' = ours / our best large-table rate ({rate:.1f} GFLOP/s)")
        print("| shape (MxNxK) | ours GFLOP/s | torch GFLOP/s | ours/torch | of large |")
        print("|---|---:|---:|---:|---:|")
        for shape, g_ours, g_torch in skinny:
            print(f"| {shape} | {g_ours:.1f} | {g_torch:.1f} | {g_ours / g_torch:.2f} | {100 * g_ours / rate:.0f}% |")
        below = [shape for shape, g, _ in skinny if g < 0.8 * rate]
        print(f"skinny products below 80% of the large-GEMM rate: {len(below)} of {len(skinny)}"
              + (f" ({', '.join(below)})" if below else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
