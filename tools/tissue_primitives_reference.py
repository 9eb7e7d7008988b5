#!/usr/bin/env python3
"""Reference outputs for the tissue-segmentation primitives of data/slides/morphology.cpp
(docs/slides.md section 3), from scipy and scikit-image, for tests/test_tissue.cpp.

Usage: tissue_primitives_reference.py DIR

DIR/cases.txt lists one case a line: `name width height k r`. For each case the script reads
DIR/name.img (width*height uint8, row-major, any values) and DIR/name.mask (uint8, 0 or 1) and writes
  name.median   uint8    scipy.ndimage.median_filter(img, size=k, mode='nearest')
  name.close    uint8    closing of mask with a (2r+1)^2 square: grey_dilation then grey_erosion,
                         mode='nearest' (checked here to equal max / min over the clipped window)
  name.label4   int32    scipy.ndimage.label(mask, 4-connected cross)
  name.label8   int32    scipy.ndimage.label(mask, 3x3 ones)
  name.otsu     text     "exact float skimage": Otsu T on img's 256-bin histogram
    exact   - the doc's rule in exact rational arithmetic (Python ints): T in 0..254 maximising
              w0 w1 (mu0 - mu1)^2 with both classes non-empty, smallest T on ties; -1 if none.
    float   - the same rule in numpy float64 (first argmax); may differ from `exact` only on
              near-ties that float64 rounding cannot separate.
    skimage - skimage.filters.threshold_otsu(img) (0.19): for integer images it builds the
              histogram over min..max, evaluates the same between-class variance in float64 at
              each bin and returns the bin value of the first maximum, class 0 being values <= T.
              So it equals `exact` except on float near-ties; for a constant image it returns
              the constant itself (the doc: no threshold, -1 here). Written as -1 then.
"""
import os
import sys
from fractions import Fraction

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu


def otsu_exact(hist):
    hist = [int(v) for v in hist]
    total = sum(hist)
    total_sum = sum(v * c for v, c in enumerate(hist))
    best, best_t = None, -1
    n0 = s0 = 0
    for t in range(255):
        n0 += hist[t]
        s0 += t * hist[t]
        n1 = total - n0
        if n0 == 0 or n1 == 0:
            continue
        w0, w1 = Fraction(n0, total), Fraction(n1, total)
        mu0, mu1 = Fraction(s0, n0), Fraction(total_sum - s0, n1)
        value = w0 * w1 * (mu0 - mu1) ** 2
        if best is None or value > best:
            best, best_t = value, t
    return best_t


def otsu_float(hist):
    h = np.asarray(hist, dtype=np.float64)
    values = np.arange(256, dtype=np.float64)
    n = h.sum()
    n0 = np.cumsum(h)[:255]
    s0 = np.cumsum(h * values)[:255]
    n1 = n - n0
    valid = (n0 > 0) & (n1 > 0)
    if not valid.any():
        return -1
    with np.errstate(divide='ignore', invalid='ignore'):
        mu0 = s0 / n0
        mu1 = (s0[-1] + h[255] * 255 - s0) / n1
        score = (n0 / n) * (n1 / n) * (mu0 - mu1) ** 2
    score = np.where(valid, score, -np.inf)
    return int(np.argmax(score))


def closing(mask, r):
    size = (2 * r + 1, 2 * r + 1)
    dilated = ndimage.grey_dilation(mask, size=size, mode='nearest')
    # Replicated edge pixels lie in the clipped window, so 'nearest' equals ignoring the outside:
    # the max over the window with outside pixels 0 (never above a 0/1 value) ...
    assert np.array_equal(dilated, ndimage.maximum_filter(mask, size=size, mode='constant', cval=0))
    eroded = ndimage.grey_erosion(dilated, size=size, mode='nearest')
    # ... and the min with outside pixels 1 (never below a 0/1 value).
    assert np.array_equal(eroded, ndimage.minimum_filter(dilated, size=size, mode='constant', cval=1))
    return eroded


def main():
    root = sys.argv[1]
    with open(os.path.join(root, 'cases.txt')) as f:
        cases = [line.split() for line in f if line.strip()]
    for name, w, h, k, r in cases:
        w, h, k, r = int(w), int(h), int(k), int(r)
        base = os.path.join(root, name)
        img = np.fromfile(base + '.img', dtype=np.uint8).reshape(h, w)
        mask = np.fromfile(base + '.mask', dtype=np.uint8).reshape(h, w)
        assert set(np.unique(mask)) <= {0, 1}

        ndimage.median_filter(img, size=k, mode='nearest').astype(np.uint8).tofile(base + '.median')
        closing(mask, r).astype(np.uint8).tofile(base + '.close')
        for conn, structure in ((4, ndimage.generate_binary_structure(2, 1)), (8, np.ones((3, 3), dtype=int))):
            labels, _ = ndimage.label(mask, structure=structure)
            labels.astype(np.int32).tofile(base + '.label%d' % conn)

        hist = np.bincount(img.ravel(), minlength=256)
        exact = otsu_exact(hist)
        flt = otsu_float(hist)
        sk = -1 if img.min() == img.max() else int(threshold_otsu(img))
        with open(base + '.otsu', 'w') as f:
            f.write('%d %d %d\n' % (exact, flt, sk))


if __name__ == '__main__':
    main()
