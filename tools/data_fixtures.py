#!/usr/bin/env python3
"""Fixtures for tests/test_data.cpp, written into the directory given as the only argument.

Feature bags with h5py (valid float32/float16/float64 with coords, (1,N,D), missing
`features`, NaN/Inf, integer-typed, zero instances, wrong rank, bad coords, garbage and
truncated files) and torch.save (float32, float16, float64, bfloat16, transposed and sliced
views, (1,N,D), and content that must be refused: dict, list, nn.Parameter, a tensor subclass,
an integer tensor, a pickle calling os.system, a compressed zip, the legacy format). Each valid
bag's expected float32 values are written raw to <file>.expect (and coords to <file>.coords).
Label / split / prior files, good and malformed. Metrics cases with scikit-learn's
accuracy_score, roc_auc_score and f1_score in metrics.json.
"""
import io
import json
import os
import sys
import zipfile

import h5py
import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
P = lambda name: os.path.join(out, name)
rng = np.random.default_rng(1234)
torch.manual_seed(1234)


def expect(name, feats, coords=None):
    np.ascontiguousarray(feats, dtype=np.float32).tofile(P(name + ".expect"))
    if coords is not None:
        np.ascontiguousarray(coords, dtype=np.int64).tofile(P(name + ".coords"))


# ---- HDF5 ---------------------------------------------------------------------------------
def h5(name, **datasets):
    with h5py.File(P(name), "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)


x = rng.standard_normal((50, 16)).astype(np.float32)
c = rng.integers(0, 100000, (50, 2)).astype(np.int32)
h5("f32.h5", features=x, coords=c)
expect("f32.h5", x, c)

x16 = (rng.standard_normal((40, 24)) * 3).astype(np.float16)
c64 = rng.integers(0, 2**40, (40, 2)).astype(np.int64)
with h5py.File(P("f16.hdf5"), "w") as f:
    f.create_dataset("features", data=x16, chunks=(8, 24), compression="gzip")
    f.create_dataset("coords", data=c64)
expect("f16.hdf5", x16.astype(np.float32), c64)

x64 = rng.standard_normal((30, 10))
cu = rng.integers(0, 60000, (30, 2)).astype(np.uint16)
h5("f64.h5", features=x64, coords=cu)
expect("f64.h5", x64.astype(np.float32), cu)

xb = rng.standard_normal((1, 30, 8)).astype(np.float32)
h5("batch1.h5", features=xb)
expect("batch1.h5", xb[0])

h5("nofeatures.h5", coords=c, feats=x)
xn = x.copy()
xn[3, 4] = np.nan
xn[10, 0] = np.inf
xn[49, 15] = -np.inf
h5("nan.h5", features=xn)
h5("int.h5", features=rng.integers(0, 10, (5, 4)).astype(np.int32))
h5("zero.h5", features=np.zeros((0, 16), np.float32))
h5("rank1.h5", features=np.zeros((16,), np.float32))
h5("badcoords.h5", features=x, coords=c[:49])
h5("floatcoords.h5", features=x, coords=c.astype(np.float32))
with open(P("garbage.h5"), "wb") as f:
    f.write(rng.integers(0, 256, 4000).astype(np.uint8).tobytes())
with open(P("f32.h5"), "rb") as f:
    blob = f.read()
with open(P("truncated.h5"), "wb") as f:
    f.write(blob[: len(blob) // 2])

# ---- torch.save ------------------------------------------------------------------------------
def save(name, obj, **kw):
    torch.save(obj, P(name), **kw)


t = torch.randn(20, 12)
save("f32.pt", t)
expect("f32.pt", t.numpy())
t16 = (torch.randn(20, 12) * 4).half()
save("f16.pt", t16)
expect("f16.pt", t16.float().numpy())
t64 = torch.randn(7, 5, dtype=torch.float64)
save("f64.pt", t64)
expect("f64.pt", t64.float().numpy())
tb = torch.randn(9, 6).bfloat16()
save("bf16.pt", tb)
expect("bf16.pt", tb.float().numpy())
tt = torch.randn(12, 20).t()
assert not tt.is_contiguous()
save("transposed.pt", tt)
expect("transposed.pt", tt.contiguous().numpy())
big = torch.randn(40, 12)
ts = big[5:25]
save("slice.pt", ts)
expect("slice.pt", ts.numpy())
ts2 = torch.randn(30, 16)[3:27:2, 1::3]  # offset + non-unit strides in both dims
save("strided.pt", ts2)
expect("strided.pt", ts2.contiguous().numpy())
t1 = torch.randn(1, 15, 4)
save("batch1.pt", t1)
expect("batch1.pt", t1[0].numpy())
tg = torch.randn(6, 3, requires_grad=True)
save("grad.pt", tg)
expect("grad.pt", tg.detach().numpy())
tw = torch.randn(300, 257)  # storage > 255 elements (BININT2 / BININT sizes)
save("wide.pt", tw)
expect("wide.pt", tw.numpy())

tn = torch.randn(5, 4)
tn[1, 1] = float("nan")
save("nan.pt", tn)
save("dict.pt", {"features": torch.randn(4, 3)})
save("list.pt", [torch.randn(4, 3)])
save("param.pt", torch.nn.Parameter(torch.randn(4, 3)))


class MyTensor(torch.Tensor):
    pass


save("subclass.pt", torch.randn(4, 3).as_subclass(MyTensor))
save("int.pt", torch.arange(12).reshape(4, 3))
save("vector.pt", torch.randn(8))
save("legacy.pt", torch.randn(4, 3), _use_new_zipfile_serialization=False)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + P("PWNED_reduce"),))


save("reduce.pt", Evil())


def rezip(src, dst, replace=None, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(P(src)) as zi, zipfile.ZipFile(P(dst), "w", compression=compression) as zo:
        for info in zi.infolist():
            data = zi.read(info.filename)
            if replace and info.filename.endswith("/data.pkl"):
                data = replace
            zo.writestr(info.filename, data, compress_type=compression)


cmd = ("touch " + P("PWNED_os")).encode()
evil_pkl = b"\x80\x02cos\nsystem\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd + b"q\x01\x85q\x02Rq\x03."
rezip("f32.pt", "evil.pt", replace=evil_pkl)
rezip("f32.pt", "compressed.pt", compression=zipfile.ZIP_DEFLATED)
rezip("f32.pt", "rezipped.pt")  # stored entries written by Python's zipfile: must still load
expect("rezipped.pt", t.numpy())
with open(P("f32.pt"), "rb") as f:
    blob = f.read()
with open(P("truncated.pt"), "wb") as f:
    f.write(blob[: len(blob) // 2])
with open(P("notzip.pt"), "wb") as f:
    f.write(b"hello, this is not a zip file at all" * 10)

# ---- labels, splits, priors ------------------------------------------------------------------
def text(name, s):
    with open(P(name), "w", newline="") as f:
        f.write(s)


text("labels_ok.csv", '\ufeffcase,name,label\r\nc1,slide_a,0\r\nc2,"slide,b",1\r\nc3, slide_c ,2\r\n\r\nc4,slide_d,1\r\n')
text("labels_nolabel.csv", "name,class\ns1,0\n")
text("labels_noname.csv", "slide,label\ns1,0\n")
text("labels_badint.csv", "name,label\ns1,0\ns2,x1\n")
text("labels_float.csv", "name,label\ns1,0\ns2,1.5\n")
text("labels_dup.csv", "name,label\ns1,0\ns2,1\ns1,1\n")
text("labels_short.csv", "name,label\ns1,0\ns2\n")
text("labels_empty.csv", "")
text("labels_headeronly.csv", "name,label\n")
text("labels_range.csv", "name,label\ns1,0\ns2,1\nslide_far,3\n")
split = {
    "train_0": ["a", "b"], "val_0": ["c"], "test_0": ["d", "e"],
    "train_1": ["c", "d"], "val_1": ["a"], "test_1": ["b", "e"],
}
text("split_ok.json", json.dumps(split))
bad = dict(split)
del bad["val_1"]
text("split_missing.json", json.dumps(bad))
bad = dict(split)
bad["test_0"] = ["d", "b"]
text("split_overlap.json", json.dumps(bad))
bad = dict(split)
bad["train_0"] = ["a", 3]
text("split_nonstring.json", json.dumps(bad))
text("split_invalid.json", '{"train_0": ["a",')
text("prompts_ok.json", json.dumps(["a tile of tumour", "stroma, with \"fibres\"", "ünïcode"]))
text("prompts_bad.json", json.dumps(["ok", 5]))
text("prompts_obj.json", json.dumps({"a": "b"}))
text("bag_ok.csv", '"first prior"\n"with, a comma"\n"say ""hi"""\n\n"two\nlines"\r\nunquoted text\n')
text("bag_twofields.csv", '"one"\ntwo,three\n')
text("bag_unterminated.csv", '"one"\n"two\n')

# ---- metrics ---------------------------------------------------------------------------------
cases = []


def add_case(probs, labels):
    C = probs.shape[1]
    pred = probs.argmax(axis=1)
    case = {"C": C, "probs": probs.ravel().tolist(), "labels": labels.tolist(),
            "acc": float(accuracy_score(labels, pred))}
    if C == 2:
        case["auc"] = float(roc_auc_score(labels, probs[:, 1]))
        case["f1"] = float(f1_score(labels, pred))
    else:
        case["auc"] = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
        case["f1"] = float(f1_score(labels, pred, average="macro"))
    cases.append(case)


for n in (9, 57, 200):  # binary, continuous and heavily tied scores
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    p1 = rng.random(n)
    add_case(np.stack([1 - p1, p1], 1), y)
    p1 = np.round(rng.random(n), 1)
    add_case(np.stack([1 - p1, p1], 1), y)
for C, n in ((3, 60), (3, 301), (4, 150), (5, 40)):
    y = rng.integers(0, C, n)
    y[:C] = np.arange(C)
    p = rng.dirichlet(np.ones(C), n)
    add_case(p, y)
    k = rng.integers(1, 4, (n, C)).astype(np.float64)  # few distinct values: ties everywhere
    add_case(k / k.sum(1, keepdims=True), y)
y = np.array([0, 0, 1, 1, 2, 2, 2])  # class 1 never predicted (precision 0/0)
p = np.array([[.8, .1, .1], [.2, .1, .7], [.7, .2, .1], [.1, .2, .7], [.1, .1, .8], [.3, .3, .4], [.6, .2, .2]])
add_case(p, y)
y = np.array([0, 1, 0, 1, 1])  # binary, class 1 never predicted
add_case(np.array([[.9, .1], [.8, .2], [.7, .3], [.6, .4], [.55, .45]]), y)
with open(P("metrics.json"), "w") as f:
    json.dump(cases, f)
print("fixtures written to", out)
