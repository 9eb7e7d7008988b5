#!/usr/bin/env python3
"""Writes one bad input per validation rule next to a tiny dataset made by make_tiny_dataset.py
(for tests/test_validation.cpp). DIR must hold that dataset (features/, labels.csv, split.json,
instance_priors.json, bag_priors.csv, z_ins.safetensors, z_bag.safetensors).

Feature cases get their own directory DIR/bad/feat_<case>/ holding symlinks to every good bag
except slide_c0_00, which is replaced by the bad file; the other cases are single files
DIR/bad/<case>.<ext>. Nothing here is ever executed: the malicious .pt only *contains* a pickle
that would call os.system (touching DIR/bad/PWNED) if it were unpickled by Python.
Usage: make_bad_inputs.py DIR
"""
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import h5py
import numpy as np

d = sys.argv[1]
bad = os.path.join(d, "bad")
os.makedirs(bad, exist_ok=True)
feats = os.path.join(d, "features")
slides = sorted(f[:-3] for f in os.listdir(feats) if f.endswith(".h5"))
victim = "slide_c0_00"
with h5py.File(os.path.join(feats, victim + ".h5"), "r") as f:
    good = f["features"][()]
n, dim = good.shape


def feat_dir(case, ext=".h5", skip_victim=True):
    p = os.path.join(bad, "feat_" + case)
    os.makedirs(p, exist_ok=True)
    for s in slides:
        if s == victim and skip_victim:
            continue
        os.symlink(os.path.join(os.path.abspath(feats), s + ".h5"), os.path.join(p, s + ".h5"))
    return os.path.join(p, victim + ext)


def h5(case, **datasets):
    with h5py.File(feat_dir(case), "w") as f:
        for k, v in datasets.items():
            f[k] = v


feat_dir("missing")  # slide_c0_00 has no feature file
h5("no_features", coords=np.zeros((n, 2), np.int64))
h5("rank", features=good.reshape(-1))
h5("rank3", features=np.stack([good, good]))
h5("width", features=good[:, : dim // 2].copy())
h5("zero", features=np.zeros((0, dim), np.float32))
x = good.copy()
x[0, 0] = np.nan
x[1, 1] = np.nan
x[2, 2] = np.inf
x[3, 3] = -np.inf
x[0, 5] = np.nan
h5("nan", features=x)  # 5 non-finite values
h5("int", features=np.ones((n, dim), np.int32))
x = good.astype(np.float64)
x[0, :3] = 1e300
h5("f64_overflow", features=x)  # 3 values outside float32's range
with open(feat_dir("not_hdf5"), "wb") as f:
    f.write(b"this is not an HDF5 file\n")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(os.path.abspath(bad), "PWNED"),))


def pt_zip(path, obj_pickle):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", obj_pickle)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")


pt_zip(feat_dir("pt_exec", ".pt"), pickle.dumps(Exploit(), protocol=2))
try:
    import torch

    torch.save({"features": torch.from_numpy(good)}, feat_dir("pt_dict", ".pt"))
except ImportError:
    pt_zip(feat_dir("pt_dict", ".pt"), pickle.dumps({"features": [1.0]}, protocol=2))

# Labels.
rows = open(os.path.join(d, "labels.csv")).read().splitlines()
header, body = rows[0], rows[1:]


def write(name, text):
    with open(os.path.join(bad, name), "w") as f:
        f.write(text)


write("labels_missing_slide.csv", "\n".join([header] + [r for r in body if not r.startswith(victim + ",")]) + "\n")
write("labels_negative.csv", "\n".join([header] + [victim + ",-1" if r.startswith(victim + ",") else r for r in body]) + "\n")
write("labels_range.csv", "\n".join([header] + [victim + ",2" if r.startswith(victim + ",") else r for r in body]) + "\n")
write("labels_duplicate.csv", "\n".join([header] + body + [body[0]]) + "\n")
write("labels_not_int.csv", "\n".join([header] + [victim + ",tumour" if r.startswith(victim + ",") else r for r in body]) + "\n")
write("labels_no_column.csv", "\n".join(["slide,class"] + body) + "\n")

# Splits.
split = json.load(open(os.path.join(d, "split.json")))
s = dict(split)
del s["val_0"]
write("split_missing_key.json", json.dumps(s))
s = json.loads(json.dumps(split))
s["test_0"].append(s["train_0"][0])
write("split_overlap.json", json.dumps(s))
s = json.loads(json.dumps(split))
for k in ("train_0",):  # drop class 1 from the training list of fold 0
    s[k] = [x for x in s[k] if not x.startswith("slide_c1_")]
write("split_class_absent.json", json.dumps(s))
s = json.loads(json.dumps(split))
s["train_0"].append("slide_unknown_99")
write("split_unknown_slide.json", json.dumps(s))
write("split_not_json.json", "{\"train_0\": [\n")

# Safetensors (as --instance_embeddings).
f32 = struct.pack("<60f", *([0.1] * 60))


def st(name, header, blob, hlen=None):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(bad, name), "wb") as f:
        f.write(struct.pack("<Q", len(h) if hlen is None else hlen) + h + blob)


st("st_header_len.safetensors", {"embeddings": {"dtype": "F32", "shape": [5, 12], "data_offsets": [0, 240]}}, f32, hlen=1 << 40)
with open(os.path.join(bad, "st_not_json.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", 16) + b"{not json at all" + f32)
st("st_overlap.safetensors", {"embeddings": {"dtype": "F32", "shape": [5, 12], "data_offsets": [0, 240]},
                              "other": {"dtype": "F32", "shape": [2], "data_offsets": [232, 240]}}, f32)
st("st_out_of_range.safetensors", {"embeddings": {"dtype": "F32", "shape": [5, 12], "data_offsets": [8, 248]}}, f32)
st("st_dtype.safetensors", {"embeddings": {"dtype": "Q4_K", "shape": [5, 12], "data_offsets": [0, 240]}}, f32)
st("st_rows.safetensors", {"embeddings": {"dtype": "F32", "shape": [4, 15], "data_offsets": [0, 240]}}, f32)

# Tokenizer files of the wrong kind.
write("tok_unigram.json", json.dumps({"version": "1.0", "model": {"type": "Unigram", "vocab": [["a", 0.0]]}}))
write("tok_no_model.json", json.dumps({"version": "1.0", "added_tokens": []}))
with open(os.path.join(bad, "tok_binary.json"), "wb") as f:
    f.write(open(os.path.join(d, "z_ins.safetensors"), "rb").read())

# Prompt files.
write("bag_priors_3rows.csv", '"a"\n"b"\n"c"\n')
write("instance_priors_4.json", json.dumps(["a", "b", "c", "d"]))
write("instance_priors_not_list.json", json.dumps({"a": "b"}))
