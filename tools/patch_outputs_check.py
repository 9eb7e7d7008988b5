#!/usr/bin/env python3
"""Reads `libramil patch` outputs with independent tools (h5py, json, numpy) for the tests.

  patch_outputs_check.py summary OUT_DIR CONFIG SLIDE_NAME SLIDE_PATH [REF_DIR]
      Prints one JSON object: the coordinates file's attributes and patch count (h5py), whether
      every patch lies inside the slide's level-0 bounds (OpenSlide's dimensions), the GeoJSON's
      validity (a FeatureCollection of Polygons, rings closed, each hole's vertices inside its
      outer ring), and with REF_DIR (tools/slide_reference.py's output) the reference's patch
      count and how many coordinates the two share.
  patch_outputs_check.py same-coords A.h5 B.h5
      Prints {"same": true|false, "a": N, "b": M}: the two files' coords datasets are equal.

Used by tests/test_patch.cpp; runs with Debian's /usr/bin/python3 (h5py, numpy, openslide).
"""
import json
import os
import sys

import h5py
import numpy as np


def slide_size(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in (".png", ".jpg", ".jpeg", ".bmp"):
        from PIL import Image
        with Image.open(path) as im:
            return im.size
    import openslide
    s = openslide.OpenSlide(path)
    try:
        return s.dimensions
    finally:
        s.close()


def inside(pt, ring):
    """Ray casting: True when pt is strictly inside or on the boundary of the closed ring."""
    x, y = pt
    n = len(ring) - 1
    hit = False
    for i in range(n):
        (x1, y1), (x2, y2) = ring[i], ring[i + 1]
        if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            if (x2 - x1) * (y - y1) == (y2 - y1) * (x - x1):
                return True  # on an edge
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xc:
                hit = not hit
    return hit


def check_geojson(path):
    with open(path) as f:
        g = json.load(f)
    problems = []
    if g.get("type") != "FeatureCollection":
        problems.append("not a FeatureCollection")
    polygons = holes = 0
    for k, feat in enumerate(g.get("features", [])):
        geom = feat.get("geometry", {})
        if feat.get("type") != "Feature" or geom.get("type") != "Polygon":
            problems.append(f"feature {k} is not a Polygon feature")
            continue
        rings = geom["coordinates"]
        polygons += 1
        for r, ring in enumerate(rings):
            if len(ring) < 4 or ring[0] != ring[-1]:
                problems.append(f"feature {k} ring {r} is not closed or has < 3 corners")
        outer = rings[0]
        for r, ring in enumerate(rings[1:], 1):
            holes += 1
            if not all(inside(p, outer) for p in ring):
                problems.append(f"feature {k} hole {r} has a vertex outside its outer ring")
    return {"geojson_polygons": polygons, "geojson_holes": holes, "geojson_problems": problems}


def summary(out_dir, config, name, slide_path, ref_dir=None):
    h5 = os.path.join(out_dir, config, "patches", name + "_patches.h5")
    res = {}
    with h5py.File(h5, "r") as f:
        coords = f["coords"][:]
        res["dtype"] = str(coords.dtype)
        res["shape"] = list(coords.shape)
        res["attrs"] = {k: (v.item() if hasattr(v, "item") else (v.decode() if isinstance(v, bytes) else v))
                        for k, v in f["coords"].attrs.items()}
    w, h = slide_size(slide_path)
    p0 = int(res["attrs"]["patch_size_level0"])
    res["patches"] = int(len(coords))
    res["inside_bounds"] = bool(len(coords) == 0 or (coords.min() >= 0 and (coords[:, 0] + p0).max() <= w
                                                      and (coords[:, 1] + p0).max() <= h))
    res["sorted_row_major"] = bool(all((a[1], a[0]) < (b[1], b[0]) for a, b in zip(coords[:-1], coords[1:])))
    res.update(check_geojson(os.path.join(out_dir, "contours_geojson", name + ".geojson")))
    for sub, ext in (("thumbnails", ".jpg"), ("contours", ".jpg")):
        res[sub + "_exists"] = os.path.isfile(os.path.join(out_dir, sub, name + ext))
    if ref_dir:
        ref = np.load(os.path.join(ref_dir, "coords.npy"))
        ours = {tuple(c) for c in coords.tolist()}
        theirs = {tuple(c) for c in ref.tolist()}
        res["reference_patches"] = len(theirs)
        res["shared_patches"] = len(ours & theirs)
    print(json.dumps(res))


def same_coords(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        ca, cb = fa["coords"][:], fb["coords"][:]
        same = ca.shape == cb.shape and bool((ca == cb).all()) and dict(fa["coords"].attrs) == dict(fb["coords"].attrs)
    print(json.dumps({"same": bool(same), "a": int(len(ca)), "b": int(len(cb))}))


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "summary":
        summary(*sys.argv[2:7])
    elif len(sys.argv) == 4 and sys.argv[1] == "same-coords":
        same_coords(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
