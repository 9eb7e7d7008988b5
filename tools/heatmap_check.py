#!/usr/bin/env python3
"""Independent readers of what `libramil eval --scores` and `libramil heatmap` write
(docs/heatmaps.md), with json and h5py only (no code of ours), for tests/test_heatmap.cpp.

Subcommands (each prints one JSON object; exit 1 with a message on the first mismatch)
  geojson GEOJSON SCORES_H5
         The FeatureCollection has one Polygon Feature per row of the scores file's coords, in
         order: one closed ring of 5 points, the square [x, x + P0] x [y, y + P0] (P0 the coords'
         patch_size_level0 attribute) counter-clockwise as seen with y up; objectType tile or
         detection; measurements equal to the score datasets (float32) the file names.
  scores SCORES_H5 FEATURES_H5
         coords (N, 2) int64 equal to the features file's, patch_size_level0 copied, one float32
         (N,) dataset per name in the 'scores' attribute, and the model / checkpoint attributes.
  viridis
         matplotlib's viridis at t = i / 255, i = 0..255, as 8-bit RGB (a list of 256 triples).
Run with /usr/bin/python3 (Debian's h5py and matplotlib).
"""
import json
import sys


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def cmd_geojson(geojson_path, scores_path):
    import h5py
    import numpy as np
    with open(geojson_path) as f:
        g = json.load(f)
    with h5py.File(scores_path, "r") as h:
        coords = h["coords"][()]
        p0 = int(h["coords"].attrs["patch_size_level0"])
        names = [n for n in text(h.attrs["scores"]).split(",") if n]
        values = {n: h[n][()].astype(np.float32) for n in names}
    if g.get("type") != "FeatureCollection":
        fail("not a FeatureCollection")
    feats = g["features"]
    if len(feats) != len(coords):
        fail(f"{len(feats)} features for {len(coords)} patches")
    worst = 0.0
    measured = set()
    for i, (feat, (x, y)) in enumerate(zip(feats, coords.tolist())):
        if feat.get("type") != "Feature" or feat["geometry"]["type"] != "Polygon":
            fail(f"feature {i} is not a Polygon Feature")
        rings = feat["geometry"]["coordinates"]
        if len(rings) != 1 or len(rings[0]) != 5:
            fail(f"feature {i}: expected one ring of 5 points, got {rings}")
        ring = rings[0]
        if ring[0] != ring[-1]:
            fail(f"feature {i}: ring not closed")
        corners = {(a, b) for a, b in ring[:4]}
        if corners != {(x, y), (x + p0, y), (x + p0, y + p0), (x, y + p0)}:
            fail(f"feature {i}: ring {ring} is not the square of ({x}, {y}) side {p0}")
        # Shoelace area of the raw coordinates (RFC 7946 reads them with y up): positive =
        # counter-clockwise.
        area = sum(ring[k][0] * ring[k + 1][1] - ring[k + 1][0] * ring[k][1] for k in range(4)) / 2
        if area != p0 * p0:
            fail(f"feature {i}: ring area {area} (y up) is not +{p0 * p0} (counter-clockwise)")
        props = feat["properties"]
        if props.get("objectType") not in ("tile", "detection"):
            fail(f"feature {i}: objectType {props.get('objectType')!r}")
        m = props.get("measurements", {})
        if i == 0:
            measured = set(m)
        elif set(m) != measured:
            fail(f"feature {i}: measurements {sorted(m)} differ from feature 0's {sorted(measured)}")
        for n, v in m.items():
            if n not in values:
                fail(f"feature {i}: measurement {n!r} is not a score of {scores_path}")
            ref = float(values[n][i])
            worst = max(worst, abs(v - ref) / max(abs(ref), 1e-30))
    print(json.dumps({"features": len(feats), "patches": int(len(coords)), "size": p0,
                      "measurements": sorted(measured), "max_rel_err": worst}))


def cmd_scores(scores_path, features_path):
    import h5py
    import numpy as np
    with h5py.File(scores_path, "r") as h, h5py.File(features_path, "r") as f:
        c = h["coords"]
        if c.dtype != np.int64 or c.ndim != 2 or c.shape[1] != 2:
            fail(f"coords {c.dtype} {c.shape}")
        coords_equal = bool(np.array_equal(c[()], f["coords"][()]))
        p0_equal = int(c.attrs["patch_size_level0"]) == int(f["coords"].attrs["patch_size_level0"])
        names = [n for n in text(h.attrs["scores"]).split(",") if n]
        for n in names:
            d = h[n]
            if d.dtype != np.float32 or d.shape != (c.shape[0],):
                fail(f"score {n}: {d.dtype} {d.shape}, expected float32 ({c.shape[0]},)")
        sums = {n: float(h[n][()].astype(np.float64).sum()) for n in names}
        labels = {n: text(h[n].attrs["label"]) for n in names}
        out = {"patches": int(c.shape[0]), "coords_equal": coords_equal, "patch_size_equal": p0_equal,
               "scores": names, "sums": sums, "labels": labels,
               "model": text(h.attrs["model"]), "checkpoint": text(h.attrs["checkpoint"]),
               "written_by": text(h.attrs.get("written_by", ""))}
    print(json.dumps(out))


def cmd_viridis():
    from matplotlib import cm
    rows = []
    for i in range(256):
        r, g, b, _ = cm.viridis(i / 255)
        rows.append([round(r * 255), round(g * 255), round(b * 255)])
    print(json.dumps(rows))


def main(argv):
    if len(argv) == 3 and argv[0] == "geojson":
        cmd_geojson(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "scores":
        cmd_scores(argv[1], argv[2])
    elif argv == ["viridis"]:
        cmd_viridis()
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
