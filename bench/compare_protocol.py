#!/usr/bin/python3
"""Protocol benchmark (issue #9): the whole few-shot protocol of SPEC.md -- K folds x E epochs,
one bag per AdamW step, val and test evaluated after every epoch, best-val state reloaded --
timed end to end, `libramil train` against the PyTorch driver tools/protocol_reference.py,
same machine, same dataset on disk, same thread count.

Steps
  (a) dataset: `libramil simulate --task rcc` into the scratch directory (reused when present).
      Bag sizes come from the simulator's log-normal (median 4000 x --size-scale); slides whose
      bag holds --min-patches..--max-patches patches are kept, balanced over the 3 classes:
      shots + ceil(val_test/3) per class (so each fold trains on shots x 3 slides and
      evaluates val + test on --val-test-slides of the rest), written to bench_labels.csv;
      other bags are deleted. `libramil split` draws 5 folds (a run with --folds k < 5 uses the
      first k, identical to those of the 5-fold split). `libramil encode-text` embeds the
      instance priors and the bag priors' high-resolution rows once; both sides read these
      files, so they start from the same z_ins, z_bag.
  (b) `libramil train ... --threads T` (no --save_dir: the best state stays in memory, as on
      the PyTorch side), timed as a subprocess from start to exit.
  (c) `tools/protocol_reference.py ... --threads T`, timed the same way.
  (d) a markdown table: wall seconds end to end (process start to exit: import/start-up,
      loading every bag once, training, evaluation), the protocol part alone (after loading),
      the ratio torch / ours, and both sides' mean test accuracy / AUC / F1. The metrics will
      not be identical (initialisation and shuffling streams differ) but should be in the same
      range.

Full size (the issue's configuration; hours on the PyTorch side, see docs/benchmarks.md):
  /usr/bin/python3 bench/compare_protocol.py
Reduced (1 fold x 20 epochs at full data size):
  /usr/bin/python3 bench/compare_protocol.py --folds 1
Tiny smoke run:
  /usr/bin/python3 bench/compare_protocol.py --folds 1 --epochs 2 --val-test-slides 20 \\
      --size-scale 0.125 --min-patches 250 --max-patches 1000
"""
import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import openblas_env  # noqa: E402

CLASSES = 3  # rcc
MEDIAN_PATCHES = 4000  # data/sim/simulate.cpp task_median_patches("rcc"); sizes are log-normal, sigma 0.8


def run(cmd, env=None, log=None):
    """Runs cmd, returns (stdout, stderr, wall seconds); exits with its output on failure."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if log:
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n--- stdout\n" + p.stdout + "--- stderr\n" + p.stderr)
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout, p.stderr, wall


def text_dim(path):
    """Dt of the `embeddings` tensor of a .safetensors file (header only)."""
    import struct
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))["embeddings"]["shape"][1]


def loadavg():
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def in_range_probability(lo, hi, scale):
    """P(lo <= N <= hi) for N = exp(log(4000) + 0.8 g) x scale (ignoring the clamps)."""
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    z = lambda n: math.log(max(n, 1e-9) / (MEDIAN_PATCHES * scale)) / 0.8  # noqa: E731
    return max(1e-3, phi(z(hi + 0.5)) - phi(z(lo - 0.5)))


def prepare_dataset(a, env):
    """Step (a); returns the dataset directory (with bench_labels.csv, splits.json, embeddings)."""
    per_class_vt = [a.val_test_slides // CLASSES + (c < a.val_test_slides % CLASSES) for c in range(CLASSES)]
    need = [a.shots + v for v in per_class_vt]
    if min(per_class_vt) < 2:
        sys.exit("--val-test-slides must give every class at least 2 (one val, one test): use >= 6")
    name = f"rcc_shots{a.shots}_vt{a.val_test_slides}_p{a.min_patches}-{a.max_patches}_x{a.size_scale:g}_seed{a.seed}"
    d = os.path.join(a.scratch, name)
    done = os.path.join(d, "bench_ready.json")
    if os.path.exists(done):
        print(f"dataset: reusing {d}", flush=True)
        return d
    import h5py

    p = in_range_probability(a.min_patches, a.max_patches, a.size_scale)
    slides = CLASSES * math.ceil(max(need) / p * 1.2 + 8)
    for attempt in range(4):
        print(f"dataset: libramil simulate --task rcc --slides {slides} --size-scale {a.size_scale:g} -> {d} "
              f"(keeping {a.min_patches}..{a.max_patches} patches, {need} slides per class)", flush=True)
        _, _, wall = run([a.libramil, "simulate", "--task", "rcc", "--slides", str(slides), "--size-scale", f"{a.size_scale:g}",
                          "--seed", str(a.seed), "--threads", str(a.threads), "--out", d, "--overwrite"], env)
        print(f"dataset: simulated in {wall:.0f} s", flush=True)
        with open(os.path.join(d, "labels.csv"), newline="") as f:
            labels = [(r["name"], int(r["label"])) for r in csv.DictReader(f)]
        keep = {c: [] for c in range(CLASSES)}
        for s, y in sorted(labels):
            with h5py.File(os.path.join(d, "features", s + ".h5"), "r") as h:
                n = h["features"].shape[0]
            if a.min_patches <= n <= a.max_patches and len(keep[y]) < need[y]:
                keep[y].append((s, n))
        if all(len(keep[c]) == need[c] for c in range(CLASSES)):
            break
        slides = int(slides * 1.5)
    else:
        sys.exit("could not draw enough slides in the patch range; widen --min-patches/--max-patches")
    kept = {s for c in keep for s, _ in keep[c]}
    for s, _ in labels:  # bags nobody reads: free the disk
        if s not in kept:
            os.remove(os.path.join(d, "features", s + ".h5"))
    with open(os.path.join(d, "bench_labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "label"])
        for s, y in sorted(labels):
            if s in kept:
                w.writerow([s, y])
    run([a.libramil, "split", "--labels", os.path.join(d, "bench_labels.csv"), "--shots", str(a.shots), "--folds", "5",
         "--seed", "7", "--out", os.path.join(d, "splits.json"), "--overwrite"], env)
    # Bag priors: the high-resolution rows (C..2C-1), as `libramil train` selects them.
    with open(os.path.join(d, "bag_priors.csv"), newline="") as f:
        rows = [r[0] for r in csv.reader(f) if r]
    with open(os.path.join(d, "bag_priors_high.csv"), "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows([[t] for t in rows[CLASSES:2 * CLASSES]])
    for texts, out in (("instance_priors.json", "instance_embeddings.safetensors"),
                       ("bag_priors_high.csv", "bag_embeddings.safetensors")):
        run([a.libramil, "encode-text", "--texts", os.path.join(d, texts), "--out", os.path.join(d, out),
             "--threads", str(a.threads), "--overwrite"], env)
    sizes = [n for c in keep for _, n in keep[c]]
    info = {"slides": len(kept), "per_class": need, "patches": sum(sizes), "min_patches": min(sizes),
            "max_patches": max(sizes), "mean_patches": sum(sizes) / len(sizes)}
    with open(done, "w") as f:
        json.dump(info, f)
    print(f"dataset: {info}", flush=True)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libramil", default=os.path.join(ROOT, "build", "libramil"))
    ap.add_argument("--scratch", default="/tmp/libramil-protocol-bench", help="where datasets and logs go")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--shots", type=int, default=16, help="training slides per class")
    ap.add_argument("--val-test-slides", type=int, default=300, help="val + test slides per fold (half each)")
    ap.add_argument("--min-patches", type=int, default=2000)
    ap.add_argument("--max-patches", type=int, default=8000)
    ap.add_argument("--size-scale", type=float, default=1.0, help="simulator bag-size scale (median 4000 x this)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="simulator seed")
    ap.add_argument("--skip-torch", action="store_true", help="time ours only")
    ap.add_argument("--skip-ours", action="store_true", help="time the PyTorch driver only")
    a = ap.parse_args()
    if not 1 <= a.folds <= 5:
        sys.exit("--folds must lie in 1..5")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    os.makedirs(a.scratch, exist_ok=True)
    d = prepare_dataset(a, env)
    with open(os.path.join(d, "bench_ready.json")) as f:
        info = json.load(f)
    tag = f"f{a.folds}_e{a.epochs}_t{a.threads}"
    config = (f"rcc simulated, {a.folds} fold(s) x {a.epochs} epochs, {a.shots} shots x {CLASSES} classes = "
              f"{a.shots * CLASSES} train slides/fold, {a.val_test_slides} val+test slides/fold, "
              f"{info['min_patches']}..{info['max_patches']} patches/slide (mean {info['mean_patches']:.0f}), "
              f"D=512, Kt=46, Kv=10, Dt={text_dim(os.path.join(d, 'instance_embeddings.safetensors'))} "
              f"(prior embeddings from `libramil encode-text`), paper mode, {a.threads} threads")
    print(f"config: {config}; torch anchor with {openblas_env.describe()}", flush=True)
    rows = {}
    if not a.skip_ours:
        cmd = [a.libramil, "train", "--labels", os.path.join(d, "bench_labels.csv"), "--split", os.path.join(d, "splits.json"),
               "--features", os.path.join(d, "features"), "--instance_path", os.path.join(d, "instance_priors.json"),
               "--bag_path", os.path.join(d, "bag_priors.csv"),
               "--instance_embeddings", os.path.join(d, "instance_embeddings.safetensors"),
               "--bag_embeddings", os.path.join(d, "bag_embeddings.safetensors"),
               "--folds", str(a.folds), "--epochs", str(a.epochs), "--threads", str(a.threads)]
        print("ours: " + " ".join(cmd), flush=True)
        load0 = loadavg()
        out, err, wall = run(cmd, env, log=os.path.join(d, f"ours_{tag}.log"))
        m = re.search(r"test \(mean \+- std over (\d+) folds\): acc (\S+) \+- \S+ \| auc (\S+) \+- \S+ \| f1 (\S+) \+- \S+\s+\((\S+) s\)", out)
        if not m:
            sys.exit("cannot parse the `libramil train` summary line:\n" + out)
        rows["libramil"] = {"wall": wall, "protocol": float(m.group(5)), "acc": float(m.group(2)), "load": f"{load0} -> {loadavg()}",
                            "auc": float(m.group(3)), "f1": float(m.group(4))}
        print(f"ours: {wall:.1f} s wall", flush=True)
    if not a.skip_torch:
        cmd = [sys.executable, os.path.join(ROOT, "tools", "protocol_reference.py"), "--data", d,
               "--labels", os.path.join(d, "bench_labels.csv"), "--splits", os.path.join(d, "splits.json"),
               "--folds", str(a.folds), "--epochs", str(a.epochs), "--threads", str(a.threads)]
        print("torch: " + " ".join(cmd), flush=True)
        load0 = loadavg()
        out, err, wall = run(cmd, env, log=os.path.join(d, f"torch_{tag}.log"))
        j = json.loads(out.strip().splitlines()[-1])
        rows["pytorch"] = {"wall": wall, "protocol": j["train_seconds"] + j["eval_seconds"], "acc": j["mean"]["acc"],
                           "load": f"{load0} -> {loadavg()}",
                           "auc": j["mean"]["auc"], "f1": j["mean"]["f1"],
                           "phases": {k: j[k + "_seconds"] for k in ("import", "load", "train", "eval")}}
        print(f"torch: {wall:.1f} s wall, phases {rows['pytorch']['phases']}", flush=True)

    print(f"\nProtocol benchmark: {config}.\n")
    print("| impl | wall s (end to end) | protocol s (train + eval, after loading) | mean test acc | mean test AUC | mean test F1 | load avg (1/5/15 min) before -> after |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for k, r in rows.items():
        print(f"| {k} | {r['wall']:.1f} | {r['protocol']:.1f} | {r['acc']:.4f} | {r['auc']:.4f} | {r['f1']:.4f} | {r['load']} |")
    if len(rows) == 2:
        o, t = rows["libramil"], rows["pytorch"]
        print(f"| ratio torch / ours | {t['wall'] / o['wall']:.2f} | {t['protocol'] / o['protocol']:.2f} | | | | |")
    print(f"\n(A load average above {a.threads} means other processes competed for the cores: the seconds, "
          "and with 2+ threads per side the ratio, are then not representative.)")
    print(f"\nlogs: {d}/{{ours,torch}}_{tag}.log")


if __name__ == "__main__":
    main()
