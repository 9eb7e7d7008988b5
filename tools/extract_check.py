#!/usr/bin/env python3
"""Independent check of `libramil extract`'s pixel plumbing (tests/test_extract.cpp).

The test runs the extraction with a stand-in encoder whose six features are simple pixel
statistics: the mean R, G, B (over 255) of the left half of each patch, then of the right half.
This script recomputes them from the pixels with openslide-python (slides) or PIL (tiles), reads
the features file with h5py, and prints a JSON summary: rows, coords equal, max abs difference.

  extract_check.py slide SLIDE PATCHES_H5 FEATURES_H5 LEVEL SIZE
  extract_check.py tiles FEATURES_H5 TILE...
"""
import json
import sys

import h5py
import numpy as np
from PIL import Image


def stats(rgb):
    rgb = np.asarray(rgb, dtype=np.float64)[:, :, :3] / 255.0
    w = rgb.shape[1]
    left, right = rgb[:, : w // 2], rgb[:, w // 2:]
    return np.concatenate([left.reshape(-1, 3).mean(0), right.reshape(-1, 3).mean(0)])


def on_white(region):
    # openslide-python gives straight (un-premultiplied) RGBA; compose onto white as the C++ does.
    a = np.asarray(region, dtype=np.float64)
    alpha = a[:, :, 3:4] / 255.0
    return np.round(a[:, :, :3] * alpha + 255.0 * (1 - alpha))


def main(argv):
    mode = argv[1]
    if mode == "slide":
        import openslide

        slide_path, patches_h5, features_h5, level, size = argv[2], argv[3], argv[4], int(argv[5]), int(argv[6])
        with h5py.File(patches_h5, "r") as f:
            coords = f["coords"][:]
        s = openslide.OpenSlide(slide_path)
        ref = np.stack([stats(on_white(s.read_region((int(x), int(y)), level, (size, size)))) for x, y in coords])
    else:
        features_h5, tiles = argv[2], argv[3:]
        coords = None
        ref = np.stack([stats(Image.open(t).convert("RGB")) for t in tiles])
    with h5py.File(features_h5, "r") as f:
        feats = f["features"][:]
        got_coords = f["coords"][:]
        out = {
            "rows": int(feats.shape[0]),
            "dim": int(feats.shape[1]),
            "dtype": str(feats.dtype),
            "coords_dtype": str(got_coords.dtype),
            "coords_equal": bool(coords is None or np.array_equal(coords, got_coords)),
            "max_abs": float(np.abs(feats.astype(np.float64) - ref).max()) if feats.shape == ref.shape else None,
            "encoder": f.attrs.get("encoder", b"").decode() if isinstance(f.attrs.get("encoder", b""), bytes) else str(f.attrs.get("encoder", "")),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
