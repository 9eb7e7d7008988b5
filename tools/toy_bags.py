#!/usr/bin/python3
"""A documented toy labelling of the shipped slides' patches, for the end-to-end check
patch -> extract -> train on a fresh machine (README, docs/extract.md).

Two real slides are too few bags for a few-shot protocol, so each slide's features file (from
`libramil extract`) is cut into K pseudo-slides: its patches sorted by (y, x) and split into K
contiguous runs of rows (bands of tissue). Each pseudo-slide's label is its source slide (0 for
the first file by name, 1 for the second, ...): the task is "which slide does this band of
tissue come from", which a useful patch encoder separates easily and which says nothing about
pathology. The pseudo-slides are written as OUT/<slide>_band<k>.h5 (features, coords) with
OUT/labels.csv (name,label) in the layout `libramil train --features OUT --labels
OUT/labels.csv` reads.

usage: toy_bags.py FEATURES_DIR OUT_DIR [--bands 8]
"""
import argparse
import os
import sys

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features")
    ap.add_argument("out")
    ap.add_argument("--bands", type=int, default=8)
    a = ap.parse_args()
    files = sorted(f for f in os.listdir(a.features) if f.endswith(".h5"))
    if len(files) < 2:
        sys.exit(f"toy_bags: {a.features}: needs at least two features files (one per slide), found {len(files)}")
    os.makedirs(a.out, exist_ok=True)
    rows = ["name,label"]
    for label, name in enumerate(files):
        with h5py.File(os.path.join(a.features, name), "r") as f:
            feats, coords = f["features"][:], f["coords"][:]
        if feats.shape[0] < a.bands:
            sys.exit(f"toy_bags: {name}: {feats.shape[0]} patches, fewer than --bands {a.bands}")
        order = np.lexsort((coords[:, 0], coords[:, 1]))
        for k, idx in enumerate(np.array_split(order, a.bands)):
            bag = f"{name[:-3]}_band{k}"
            tmp = os.path.join(a.out, bag + ".h5.tmp")
            with h5py.File(tmp, "w") as g:
                g["features"] = feats[idx].astype(np.float32)
                g["coords"] = coords[idx].astype(np.int64)
            os.replace(tmp, os.path.join(a.out, bag + ".h5"))
            rows.append(f"{bag},{label}")
    with open(os.path.join(a.out, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"toy_bags: {len(rows) - 1} pseudo-slides of {len(files)} slides -> {a.out} (labels.csv)")


if __name__ == "__main__":
    main()
