#!/usr/bin/python3
"""Independent Python reference of docs/slides.md sections 1-4 (magnification, thumbnail, tissue
segmentation, tiling), written from the document only. The tests compare data/slides/ (C++)
against it, and the slide benchmark uses it as the Python speed anchor, so it is plain,
vectorised numpy / scipy / scikit-image. Contours (step 9 of section 3) are not implemented.

  slide_reference.py SLIDE --out DIR [--mpp X] [--mpp-csv FILE] [--mag 20] [--patch-size 256]
      [--overlap 0] [--min-tissue 0.5] [--seg saturation|otsu-grey] [--seg-threshold otsu|N]
      [--seg-median 7] [--seg-close 2] [--min-tissue-area 0.02] [--min-hole-area 0.01]
      [--max-holes 8] [--keep-pen] [--repeats R]
  slide_reference.py SLIDE --print-levels

Writes DIR/thumbnail.npy (H,W,3) uint8, DIR/mask.npy (H,W) uint8, DIR/coords.npy (N,2) int64
(level-0 x, y of kept patches) and DIR/result.json. Readings of points the document leaves
open (each marked "reading:" below): round() is half up; for --mpp-csv the source is "mpp-csv";
a hole belongs to the region containing the pixel above its first pixel (not "any 8-neighbour":
that may be an island inside the hole); filling a hole fills everything it encloses (CLAM's
contour semantics), so a region inside a filled hole is part of the surrounding region; a hole's
own area (for --min-hole-area and ranking) is its background pixel count; a patch whose centre
falls beyond the thumbnail (its cropped last columns/rows) has fraction 0.
"""
import argparse
import csv
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import openslide
import scipy.ndimage as ndi
from skimage.filters import rank

NOMINAL = (80.0, 40.0, 20.0, 10.0, 5.0)
EIGHT = np.ones((3, 3), dtype=bool)
FOUR = ndi.generate_binary_structure(2, 1)


class SlideError(Exception):
    pass


def round_half_up(v):
    return int(math.floor(v + 0.5))  # reading: std::round for the positive values used here


def positive_float(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and math.isfinite(v) else None


# ---------------------------------------------------------------- 1. magnification
def level0_mpp(slide, path, args):
    if args.mpp_csv:
        base = os.path.basename(path)
        names = {base, os.path.splitext(base)[0]}
        with open(args.mpp_csv, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("slide", "").strip() in names and positive_float(row.get("mpp")):
                    return float(row["mpp"]), "mpp-csv"
    if args.mpp is not None:
        return args.mpp, "mpp-flag"
    m = positive_float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X))
    if m:
        return m, "openslide.mpp-x"
    obj = positive_float(slide.properties.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
    if obj:
        return 10.0 / obj, "objective-power"
    raise SlideError(f"{path}: no microns per pixel (no openslide.mpp-x, no "
                     f"openslide.objective-power); give --mpp X or --mpp-csv FILE")


def snap_magnification(m0):
    nearest = min(NOMINAL, key=lambda n: abs(m0 - n))
    return nearest if abs(m0 - nearest) <= 0.1 * nearest else m0


# ---------------------------------------------------------------- 2. thumbnail
def thumbnail(slide, m0):
    w0, h0 = slide.level_dimensions[0]
    long0 = max(w0, h0)
    t = max(long0 / 2048, min(m0 / 1.25, long0 / 1024))
    ds = slide.level_downsamples
    fits = [i for i, d in enumerate(ds) if d <= t]
    level = max(fits, key=lambda i: (ds[i], -i)) if fits else 0
    wl, hl = slide.level_dimensions[level]
    rgba = np.asarray(slide.read_region((0, 0), level, (wl, hl)))
    rgb = rgba[..., :3].copy()
    rgb[rgba[..., 3] == 0] = 255  # transparent (outside the scanned area) -> white
    k = max(1, math.ceil(max(wl, hl) / 2048))
    if k > 1:
        ht, wt = hl // k, wl // k
        blocks = rgb[:ht * k, :wt * k].reshape(ht, k, wt, k, 3)
        sums = blocks.sum(axis=(1, 3), dtype=np.uint32)
        rgb = ((sums + (k * k) // 2) // (k * k)).astype(np.uint8)
    return rgb, level, k, k * w0 / wl, k * h0 / hl


# ---------------------------------------------------------------- 3. segmentation
def seg_channel(rgb, mode, v, n):
    """Step 1; v, n: max and min of R, G, B (uint8)."""
    if mode == "otsu-grey":
        r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
        return (255 - (299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)
    v, n = v.astype(np.int32), n.astype(np.int32)
    c = (510 * (v - n) + v) // np.maximum(2 * v, 1)  # v == 0 gives (0 + 0) // 1 = 0
    return c.astype(np.uint8)


def median(c, size):
    # skimage's sliding-histogram median on an edge-replicated copy: the same values as
    # scipy.ndimage.median_filter(c, size, mode='nearest'), about 2.5x faster.
    if size == 1:
        return c.copy()
    h = size // 2
    padded = np.pad(c, h, mode="edge")
    return rank.median(padded, np.ones((size, size), dtype=np.uint8))[h:-h, h:-h]


def otsu(hist):
    """Exact Otsu on a 256-bin histogram (Python integers): T maximises w0 w1 (mu0-mu1)^2,
    i.e. (s0 n1 - s1 n0)^2 / (n0 n1); smallest T on ties; None when no split exists."""
    hist = [int(v) for v in hist]
    n, s = sum(hist), sum(i * v for i, v in enumerate(hist))
    best, best_num, best_den = None, 0, 1
    n0 = s0 = 0
    for t in range(255):
        n0 += hist[t]
        s0 += t * hist[t]
        n1, s1 = n - n0, s - s0
        if n0 == 0 or n1 == 0:
            continue
        num, den = (s0 * n1 - s1 * n0) ** 2, n0 * n1
        if best is None or num * best_den > best_num * den:
            best, best_num, best_den = t, num, den
    return best


def close_mask(mask, r):
    if r == 0:
        return mask
    size = 2 * r + 1  # outside pixels ignored: dilation pads with 0, erosion with 1
    dil = ndi.maximum_filter(mask, size=size, mode="constant", cval=0)
    return ndi.minimum_filter(dil, size=size, mode="constant", cval=1)


def first_pixels(lab):
    """(label, (row, column) of its first pixel in raster order) for every label."""
    for label, box in enumerate(ndi.find_objects(lab), 1):
        if box is not None:
            row = box[0].start
            yield label, (row, box[1].start + int(np.argmax(lab[row, box[1]] == label)))


def regions_and_holes(mask, px_mm2, args):
    """Steps 6-8: returns (tissue mask, kept regions, kept holes)."""
    fg, nf = ndi.label(mask, structure=EIGHT)
    bg, nb = ndi.label(~mask, structure=FOUR)  # labels in raster order of the first pixel
    size_f = np.bincount(fg.ravel(), minlength=nf + 1)
    size_b = np.bincount(bg.ravel(), minlength=nb + 1)
    border = np.zeros(nb + 1, dtype=bool)
    border[np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]])] = True
    border[0] = False
    # The pixel above a component's first (raster-order) pixel lies outside it and outside
    # anything it encloses: for a hole, in the region surrounding it (reading: not "any
    # 8-neighbour", which may be an island inside the hole); for a region, in the background
    # component enclosing it (none when the region touches the top edge).
    hole_region = np.zeros(nb + 1, dtype=np.int64)
    for h, (i, j) in first_pixels(bg):
        if not border[h]:
            hole_region[h] = fg[i - 1, j]
    region_hole = np.zeros(nf + 1, dtype=np.int64)
    for q, (i, j) in first_pixels(fg):
        if i > 0 and not border[bg[i - 1, j]]:
            region_hole[q] = bg[i - 1, j]
    holes_of = [[] for _ in range(nf + 1)]
    for h in np.flatnonzero(hole_region):
        holes_of[hole_region[h]].append(int(h))  # ascending label = raster order
    regions_in = [[] for _ in range(nb + 1)]
    for q in np.flatnonzero(region_hole):
        regions_in[region_hole[q]].append(int(q))

    def subtree(h):  # everything enclosed by hole h, h included: (regions, holes, pixels)
        rs, hs, stack = [], [h], [h]
        while stack:
            for q in regions_in[stack.pop()]:
                rs.append(q)
                hs.extend(holes_of[q])
                stack.extend(holes_of[q])
        return rs, hs, int(size_f[rs].sum() + size_b[hs].sum())

    tissue_f = np.zeros(nf + 1, dtype=bool)
    tissue_b = np.zeros(nb + 1, dtype=bool)
    kept_regions = kept_holes = 0
    todo = [int(q) for q in np.flatnonzero(region_hole[1:] == 0) + 1]
    while todo:
        q = todo.pop()
        holes = holes_of[q]
        big = [h for h in holes if size_b[h] * px_mm2 >= args.min_hole_area]
        big.sort(key=lambda h: (-size_b[h], h))
        keep = set(big[:args.max_holes])
        filled = [subtree(h) for h in holes if h not in keep]
        todo.extend(r for h in keep for r in regions_in[h])  # regions of their own
        if (size_f[q] + sum(f[2] for f in filled)) * px_mm2 < args.min_tissue_area:
            continue
        kept_regions += 1
        kept_holes += len(keep)
        tissue_f[q] = True
        for rs, hs, _ in filled:
            tissue_f[rs] = True
            tissue_b[hs] = True
    return tissue_f[fg] | tissue_b[bg], kept_regions, kept_holes


def segment(rgb, px_mm2, args):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v, n = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    c = seg_channel(rgb, args.seg, v, n)
    med = median(c, args.seg_median)
    if args.seg_threshold == "otsu":
        thr = otsu(np.bincount(med.ravel(), minlength=256))
        mask = med > thr if thr is not None else np.zeros(med.shape, dtype=bool)
    else:
        thr = int(args.seg_threshold)
        mask = med > thr
    mask &= (v >= 30) & (n <= 220)  # step 4: black, near-white glass
    if not args.keep_pen:
        mask &= g.astype(np.int16) - r <= 20  # blue, cyan, green ink
    mask = close_mask(mask, args.seg_close)
    final, regions, holes = regions_and_holes(mask, px_mm2, args)
    return final, thr, regions, holes


# ---------------------------------------------------------------- 4. tiling
def tile(mask, w0, h0, p0, step, dx, dy, min_tissue):
    xs = np.arange(0, w0 - p0 + 1, step, dtype=np.int64)
    ys = np.arange(0, h0 - p0 + 1, step, dtype=np.int64)
    if len(xs) == 0 or len(ys) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    ht, wt = mask.shape
    integral = np.zeros((ht + 1, wt + 1), dtype=np.int64)
    integral[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    cx = (np.arange(wt) + 0.5) * dx  # thumbnail pixel centres in level-0 pixels
    cy = (np.arange(ht) + 0.5) * dy
    j0, j1 = np.searchsorted(cx, xs, "left"), np.searchsorted(cx, xs + p0, "left")
    i0, i1 = np.searchsorted(cy, ys, "left"), np.searchsorted(cy, ys + p0, "left")
    I0, I1, J0, J1 = i0[:, None], i1[:, None], j0[None, :], j1[None, :]
    count = (I1 - I0) * (J1 - J0)
    tissue = integral[I1, J1] - integral[I0, J1] - integral[I1, J0] + integral[I0, J0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = tissue / count
    if (count == 0).any():  # patch smaller than a thumbnail pixel: the centre pixel decides
        pj = np.floor((xs + p0 / 2) / dx).astype(np.int64)
        pi = np.floor((ys + p0 / 2) / dy).astype(np.int64)
        inside = (pi[:, None] < ht) & (pj[None, :] < wt)  # reading: outside the thumbnail = 0
        centre = mask[np.minimum(pi, ht - 1)[:, None], np.minimum(pj, wt - 1)[None, :]]
        frac = np.where(count == 0, (centre & inside).astype(np.float64), frac)
    yy, xx = np.nonzero(frac >= min_tissue)  # row-major: y, then x
    return np.stack([xs[xx], ys[yy]], axis=1).astype(np.int64)


# ---------------------------------------------------------------- driver
def pipeline(slide, m0, m, args, p0, step):
    t0 = time.perf_counter()
    rgb, level, k, dx, dy = thumbnail(slide, m0)
    t1 = time.perf_counter()
    px_mm2 = dx * dy * m * m / 1e6
    mask, thr, regions, holes = segment(rgb, px_mm2, args)
    t2 = time.perf_counter()
    w0, h0 = slide.level_dimensions[0]
    coords = tile(mask, w0, h0, p0, step, dx, dy, args.min_tissue)
    t3 = time.perf_counter()
    info = {"level": level, "k": k, "dx": dx, "dy": dy, "threshold": thr, "regions": regions,
            "holes": holes, "tissue_area_mm2": float(mask.sum()) * px_mm2,
            "patches": int(len(coords))}
    return rgb, mask, coords, info, (t2 - t1, t3 - t2, t3 - t0)


def print_levels(slide):
    p = slide.properties
    print(json.dumps({
        "level_count": slide.level_count,
        "level_dimensions": [list(d) for d in slide.level_dimensions],
        "level_downsamples": list(slide.level_downsamples),
        "properties": {key: p.get(key) for key in (
            openslide.PROPERTY_NAME_MPP_X, openslide.PROPERTY_NAME_MPP_Y,
            openslide.PROPERTY_NAME_OBJECTIVE_POWER, "aperio.MPP", "aperio.AppMag")},
    }, indent=2))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("slide")
    ap.add_argument("--out")
    ap.add_argument("--print-levels", action="store_true")
    ap.add_argument("--mpp", type=float)
    ap.add_argument("--mpp-csv")
    ap.add_argument("--mag", type=float, default=20.0)
    ap.add_argument("--patch-size", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=0)
    ap.add_argument("--min-tissue", type=float, default=0.5)
    ap.add_argument("--seg", choices=("saturation", "otsu-grey"), default="saturation")
    ap.add_argument("--seg-threshold", default="otsu")
    ap.add_argument("--seg-median", type=int, default=7)
    ap.add_argument("--seg-close", type=int, default=2)
    ap.add_argument("--min-tissue-area", type=float, default=0.02)
    ap.add_argument("--min-hole-area", type=float, default=0.01)
    ap.add_argument("--max-holes", type=int, default=8)
    ap.add_argument("--keep-pen", action="store_true")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    if not args.print_levels and not args.out:
        ap.error("--out DIR is required")
    if args.seg_threshold != "otsu" and not (args.seg_threshold.isdigit()
                                             and 0 <= int(args.seg_threshold) <= 254):
        ap.error("--seg-threshold must be otsu or an integer 0..254")
    if args.seg_median < 1 or args.seg_median % 2 == 0:
        ap.error("--seg-median must be odd and positive")
    if args.seg_close < 0 or args.max_holes < 0 or args.overlap < 0 or args.patch_size < 1:
        ap.error("--seg-close, --max-holes, --overlap must be >= 0, --patch-size >= 1")
    if args.mpp is not None and not args.mpp > 0:
        ap.error("--mpp must be positive")
    if args.mag <= 0 or args.repeats < 1:
        ap.error("--mag must be positive and --repeats >= 1")
    return args


def main(argv):
    args = parse_args(argv)
    slide = openslide.OpenSlide(args.slide)
    if args.print_levels:
        print_levels(slide)
        return 0
    try:
        m, source = level0_mpp(slide, args.slide, args)
        m0 = snap_magnification(10.0 / m)
        if args.mag > m0:
            raise SlideError(f"{args.slide}: --mag {args.mag:g} exceeds the level-0 "
                             f"magnification {m0:g} (no upsampling)")
        p0 = round_half_up(args.patch_size * m0 / args.mag)
        o0 = round_half_up(args.overlap * m0 / args.mag)
        if p0 - o0 <= 0:
            raise SlideError(f"{args.slide}: step P0 - O0 = {p0 - o0} is not positive")
    except SlideError as e:
        print(e, file=sys.stderr)
        return 2
    runs = [pipeline(slide, m0, m, args, p0, p0 - o0) for _ in range(args.repeats)]
    rgb, mask, coords, info, _ = runs[-1]
    seg_s, tile_s, total_s = (statistics.median(r[4][i] for r in runs) for i in range(3))
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "thumbnail.npy"), rgb)
    np.save(os.path.join(args.out, "mask.npy"), mask.astype(np.uint8))
    np.save(os.path.join(args.out, "coords.npy"), coords)
    result = {"slide": os.path.basename(args.slide), "mpp": m, "mpp_source": source,
              "level0_magnification": m0, "patch_size_level0": p0, "overlap_level0": o0,
              **info, "seconds_segmentation": seg_s, "seconds_tiling": tile_s,
              "seconds_total": total_s, "repeats": args.repeats}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
