#!/usr/bin/python3
"""A PyTorch driver of SPEC.md's "Training and evaluation protocol", the anchor that
`libramil train` is timed against (bench/compare_protocol.py, issue #9).

It reads the same on-disk dataset as `libramil train` and runs the same protocol, with the
model of tools/libramil_reference.py (imported, not copied):
  per fold a fresh model (seeded), AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay
  0.01 on every parameter), linear warm-up over 100 optimizer steps from 0 then cosine decay
  to 0 at epochs x steps_per_epoch, stepped after every bag (the factor models/nn/optim.cpp's
  CosineWithWarmup computes); batch 1 bag; train order shuffled each epoch; after every epoch
  val and test are evaluated under torch.no_grad(); the best-val state (accuracy, ties broken
  by a better AUC) is kept in memory, reloaded into a fresh model and its val and test metrics
  reported; mean and sample std (ddof 1) over folds.
Like `libramil train` (data/feature_cache.h), every feature bag the folds use is read once into
memory as float32 before the first fold. Nothing is written to disk (`libramil train` without
--save_dir keeps its best state in memory too).

Inputs (defaults relative to --data, as bench/compare_protocol.py lays them out):
  --labels    DATA/labels.csv                    name,label
  --features  DATA/features                      <slide>.h5 (CLAM layout: dataset `features`)
  --splits    FILE (required)                    train_i / val_i / test_i lists
  --instance-embeddings DATA/instance_embeddings.safetensors   (Kt, Dt), tensor `embeddings`
  --bag-embeddings      DATA/bag_embeddings.safetensors        (C, Dt), the high-resolution rows
The prior embeddings are the files `libramil encode-text` writes and `libramil train` reads with
--instance_embeddings / --bag_embeddings, so both sides start from identical z_ins, z_bag.

Output: per-epoch lines (unless --quiet), per-fold test metrics, then one JSON line with
total_seconds, per-phase seconds (import, load, train, eval) and the mean/std metrics.

usage: /usr/bin/python3 tools/protocol_reference.py --data DIR --splits FILE
           [--folds 5] [--epochs 20] [--threads 2] [--seed 7] [--quiet]
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import openblas_env  # noqa: E402,F401  (proper OpenBLAS kernels, as bench/compare_torch.py)
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.metrics import f1_score, roc_auc_score  # noqa: E402

from libramil_reference import LibraMIL  # noqa: E402

T_IMPORTED = time.perf_counter()


# ---- inputs --------------------------------------------------------------------------------
def read_safetensors_tensor(path, name):
    """One tensor of a .safetensors file (the format is an 8-byte header length, a JSON header
    and the raw little-endian data); Debian's python3 has no `safetensors` module."""
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        if name not in header:
            sys.exit(f"{path}: no tensor '{name}' (has {sorted(k for k in header if k != '__metadata__')})")
        info = header[name]
        if dtypes.get(info["dtype"]) is None:
            sys.exit(f"{path}: tensor '{name}' has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        buf = f.read(end - begin)
    arr = np.frombuffer(buf, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return torch.from_numpy(arr.astype(np.float32))


def read_labels(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["name"]: int(r["label"]) for r in rows}


def read_bag(path):
    with h5py.File(path, "r") as f:
        return torch.from_numpy(np.ascontiguousarray(f["features"][()], dtype=np.float32))


# ---- protocol pieces -----------------------------------------------------------------------
def lr_factor(step, warmup, total):
    """models/nn/optim.cpp CosineWithWarmup::factor (the usual cosine with linear warm-up)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def metrics(probs, labels, C):
    """SPEC metrics on softmax probabilities; NaN AUC when a class is absent (as ours)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs.argmax(1)
    acc = float((pred == labels).mean())
    try:
        auc = float(roc_auc_score(labels, probs[:, 1]) if C == 2 else
                    roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=list(range(C))))
    except ValueError:
        auc = float("nan")
    f1 = float(f1_score(labels, pred, zero_division=0) if C == 2 else
                f1_score(labels, pred, average="macro", zero_division=0))
    return {"acc": acc, "auc": auc, "f1": f1}


@torch.no_grad()
def evaluate(model, slides, feats, labels, C):
    model.eval()
    probs, ys, loss = [], [], 0.0
    for s in slides:
        logits = model(feats[s])
        y = labels[s]
        loss += float(F.cross_entropy(logits.unsqueeze(0), torch.tensor([y])))
        probs.append(torch.softmax(logits.double(), 0).numpy())
        ys.append(y)
    model.train()
    m = metrics(np.stack(probs), ys, C)
    m["loss"] = loss / len(slides)
    return m


def mean_std(v):
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset directory (libramil simulate output)")
    ap.add_argument("--splits", required=True, help="split JSON (train_i/val_i/test_i)")
    ap.add_argument("--labels", help="labels CSV (default DATA/labels.csv)")
    ap.add_argument("--features", help="feature directory (default DATA/features)")
    ap.add_argument("--instance-embeddings", help="default DATA/instance_embeddings.safetensors")
    ap.add_argument("--bag-embeddings", help="default DATA/bag_embeddings.safetensors")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--mode", default="paper", choices=["paper", "reference"])
    ap.add_argument("--fusion", default="softmax", choices=["softmax", "literal"])
    ap.add_argument("--num-vis-prototypes", type=int, default=10)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ot-epsilon", type=float, default=0.05)
    ap.add_argument("--ot-iter", type=int, default=20)
    ap.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    labels_path = a.labels or os.path.join(a.data, "labels.csv")
    feat_dir = a.features or os.path.join(a.data, "features")
    ins_path = a.instance_embeddings or os.path.join(a.data, "instance_embeddings.safetensors")
    bag_path = a.bag_embeddings or os.path.join(a.data, "bag_embeddings.safetensors")
    for p in (labels_path, a.splits, ins_path, bag_path):
        if not os.path.exists(p):
            sys.exit(f"protocol_reference: {p} does not exist (prior embeddings come from `libramil encode-text`)")

    # ---- load: labels, splits, embeddings, every feature bag the folds use ----
    t0 = time.perf_counter()
    labels = read_labels(labels_path)
    C = max(labels.values()) + 1
    with open(a.splits) as f:
        split = json.load(f)
    folds = [{k: split[f"{k}_{i}"] for k in ("train", "val", "test")} for i in range(a.folds)]
    z_ins = read_safetensors_tensor(ins_path, "embeddings")
    z_bag = read_safetensors_tensor(bag_path, "embeddings")
    if z_bag.shape[0] != C:
        sys.exit(f"{bag_path}: {z_bag.shape[0]} rows, expected {C} (one per class)")
    used = sorted({s for fd in folds for part in fd.values() for s in part})
    feats = {s: read_bag(os.path.join(feat_dir, s + ".h5")) for s in used}
    D = next(iter(feats.values())).shape[1]
    load_s = time.perf_counter() - t0
    n_patches = sum(v.shape[0] for v in feats.values())
    print(f"loaded {len(used)} bags ({n_patches} patches, D={D}), Kt={z_ins.shape[0]}, Dt={z_ins.shape[1]}, C={C} "
          f"in {load_s:.1f} s; threads={torch.get_num_threads()} {openblas_env.describe()} torch {torch.__version__}",
          flush=True)

    train_s = eval_s = 0.0
    results = []
    for fold, fd in enumerate(folds):
        t_fold = time.perf_counter()
        torch.manual_seed(a.seed * 1000003 + fold)
        mk = lambda: LibraMIL(D, z_ins.shape[1], a.num_vis_prototypes, z_ins.shape[0], C, heads=a.heads,  # noqa: E731
                              mode=a.mode, fusion=a.fusion, ot_epsilon=a.ot_epsilon, ot_iter=a.ot_iter,
                              z_ins=z_ins, z_bag=z_bag)
        model = mk()
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)
        total_steps = a.epochs * len(fd["train"])
        shuffle = torch.Generator().manual_seed((a.seed ^ 0x5DEECE66D) + fold)
        step, best, best_state, best_epoch = 0, (-1.0, -math.inf), None, 0
        train_s += time.perf_counter() - t_fold
        for epoch in range(a.epochs):
            t_ep = time.perf_counter()
            order = [fd["train"][i] for i in torch.randperm(len(fd["train"]), generator=shuffle).tolist()]
            loss_sum, correct = 0.0, 0
            for s in order:
                for g in opt.param_groups:
                    g["lr"] = a.lr * lr_factor(step, a.warmup_steps, total_steps)
                opt.zero_grad()
                logits = model(feats[s])
                y = labels[s]
                loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([y]))
                lv = loss.item()
                if not math.isfinite(lv):
                    sys.exit(f"fold {fold} epoch {epoch} step {step} (slide {s}): loss is {lv}")
                loss.backward()
                opt.step()
                step += 1
                loss_sum += lv
                correct += int(logits.detach().argmax().item() == y)
            t_tr = time.perf_counter()
            val = evaluate(model, fd["val"], feats, labels, C)
            test = evaluate(model, fd["test"], feats, labels, C)
            t_ev = time.perf_counter()
            train_s += t_tr - t_ep
            eval_s += t_ev - t_tr
            better = val["acc"] > best[0] or (val["acc"] == best[0] and val["auc"] > best[1])
            if better:
                best, best_epoch = (val["acc"], val["auc"]), epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if not a.quiet:
                print(f"  fold {fold} epoch {epoch + 1:2d}/{a.epochs} loss {loss_sum / len(order):.4f} | val acc "
                      f"{val['acc']:.3f} auc {val['auc']:.3f} | test acc {test['acc']:.3f} auc {test['auc']:.3f}"
                      f"{' *' if better else '  '} ({t_ev - t_ep:.1f} s)", flush=True)
        # Reload the selected state into a fresh model and evaluate it afresh.
        t_re = time.perf_counter()
        torch.manual_seed(a.seed)
        final = mk()
        final.load_state_dict(best_state)
        fval = evaluate(final, fd["val"], feats, labels, C)
        ftest = evaluate(final, fd["test"], feats, labels, C)
        eval_s += time.perf_counter() - t_re
        results.append({"fold": fold, "best_epoch": best_epoch + 1, "val": fval, "test": ftest})
        print(f"fold {fold}: best epoch {best_epoch + 1}, test acc {ftest['acc']:.4f} auc {ftest['auc']:.4f} "
              f"f1 {ftest['f1']:.4f} ({time.perf_counter() - t_fold:.1f} s)", flush=True)

    total = time.perf_counter() - T_START
    summary = {k: mean_std([r["test"][k] for r in results]) for k in ("acc", "auc", "f1")}
    print(f"pytorch test (mean +- std over {len(results)} folds): " +
          " | ".join(f"{k} {m:.4f} +- {s:.4f}" for k, (m, s) in summary.items()) + f"  ({total:.1f} s)")
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "folds": a.folds, "epochs": a.epochs,
        "slides": len(used), "patches": n_patches,
        "total_seconds": total, "import_seconds": T_IMPORTED - T_START, "load_seconds": load_s,
        "train_seconds": train_s, "eval_seconds": eval_s,
        "mean": {k: m for k, (m, s) in summary.items()}, "std": {k: s for k, (m, s) in summary.items()},
        "folds_detail": [{"fold": r["fold"], "best_epoch": r["best_epoch"],
                          **{f"test_{k}": r["test"][k] for k in ("acc", "auc", "f1")}} for r in results],
    }), flush=True)


if __name__ == "__main__":
    main()
