#!/usr/bin/env python3
"""Seeds the libFuzzer corpora: OUT/<target>/seed_* small valid (and a few near-valid) inputs
for each fuzz target in fuzz/. Existing files are kept (libFuzzer adds to the same folders).
Only the .pt seeds need torch; when it is missing they are skipped with a note.
Usage: make_fuzz_corpus.py OUT [TARGET...]
"""
import io
import json
import os
import struct
import sys

out = sys.argv[1]
targets = sys.argv[2:] or ["safetensors", "pt", "hdf5", "tokenizer_file", "tokenize", "tables", "image"]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def safetensors_bytes(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes); laid out in the given order."""
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def seed_safetensors():
    f32 = struct.pack("<6f", *[0.5, -1, 2, 3.25, 0, 1e-3])
    put("safetensors", "f32", safetensors_bytes([("embeddings", "F32", [2, 3], f32)], {"encoder": "x"}))
    put("safetensors", "mixed", safetensors_bytes([
        ("a", "F64", [2], struct.pack("<2d", 1.0, -2.0)), ("b", "F32", [1, 2], struct.pack("<2f", 1, 2)),
        ("c", "F16", [3], struct.pack("<3H", 0x3C00, 0x7C00, 0x0001)), ("d", "BF16", [2], struct.pack("<2H", 0x3F80, 0x7FC0)),
        ("e", "I64", [1], struct.pack("<q", -5)), ("s", "F32", [], struct.pack("<f", 7)), ("z", "F32", [0, 4], b"")]))
    put("safetensors", "unpadded", safetensors_bytes([("x", "F32", [1], struct.pack("<f", 1))], pad=False))
    put("safetensors", "bad_dtype", safetensors_bytes([("x", "I32", [1], struct.pack("<i", 1))]))
    put("safetensors", "empty", safetensors_bytes([]))


def seed_pt():
    try:
        import torch
    except ImportError:
        print("make_fuzz_corpus: no torch; skipping the .pt seeds", file=sys.stderr)
        return
    g = torch.Generator().manual_seed(0)
    cases = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(2, 2, generator=g).bfloat16(),
        "f64_lead1": torch.randn(1, 3, 2, generator=g).double(),
        "transposed": torch.randn(4, 3, generator=g).t(),
        "offset_view": torch.randn(5, 3, generator=g)[1:4],
        "int": torch.arange(6).reshape(2, 3),
        "dict": {"features": torch.randn(2, 2, generator=g)},
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }
    for name, obj in cases.items():
        b = io.BytesIO()
        torch.save(obj, b)
        put("pt", name, b.getvalue())


def seed_hdf5():
    # Generator programs for fuzz/fuzz_hdf5.cpp: flags, type, rank, dims..., value mode, values.
    put("hdf5", "f32_2d", bytes([0, 0, 2, 4, 3, 1]) + bytes(range(12)))
    put("hdf5", "f16_2d_coords", bytes([16, 1, 2, 3, 2, 0]) + bytes(12) + bytes([5, 2, 3, 2, 0]) + bytes(range(48)))
    put("hdf5", "f64_lead1", bytes([8, 2, 3, 1, 2, 2, 1, 1]) + bytes([1, 2, 3, 4]))
    put("hdf5", "f32_huge", bytes([0, 0, 2, 2, 2, 2, 1, 200, 3]))
    put("hdf5", "int", bytes([0, 3, 2, 2, 2, 0]) + bytes(16))
    put("hdf5", "no_features", bytes([3, 0, 2, 1, 1, 0, 0, 0, 0, 0]))


def seed_tokenizer_file():
    vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ntumour\n##s\ncell\na\n##b\n"
    put("tokenizer_file", "vocab", b"\x00" + vocab.encode())
    wp = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": 0, "content": "[PAD]", "special": True}, {"id": 2, "content": "[CLS]", "special": True},
                           {"id": 3, "content": "[SEP]", "special": True}],
          "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                         "strip_accents": None, "lowercase": True},
          "pre_tokenizer": {"type": "BertPreTokenizer"},
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                             "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
          "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                    "max_input_chars_per_word": 100,
                    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "the": 4, "cell": 5, "##s": 6, "a": 7}}}
    put("tokenizer_file", "wordpiece_json", b"\x01" + json.dumps(wp).encode())
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz\u0120")}
    vocab.update({"th": 27, "the": 28, "\u0120the": 29, "<start>": 30, "<end>": 31})
    bpe = {"version": "1.0", "added_tokens": [{"id": 30, "content": "<start>", "special": True},
                                              {"id": 31, "content": "<end>", "special": True}],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<start>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                         {"SpecialToken": {"id": "<end>", "type_id": 0}}],
                              "special_tokens": {"<start>": {"id": "<start>", "ids": [30], "tokens": ["<start>"]},
                                                 "<end>": {"id": "<end>", "ids": [31], "tokens": ["<end>"]}}},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "vocab": vocab,
                     "merges": ["t h", "th e", "\u0120 the"]}}
    put("tokenizer_file", "bpe_json", b"\x01" + json.dumps(bpe).encode())


def seed_tokenize():
    put("tokenize", "ascii", b"\x00A tumour with clear cells, (renal) carcinoma!")
    put("tokenize", "unicode", "\x05Ünïcödé 中文 — \u00e9t\u00e9 \U0001F600 tabs\tand\nlines".encode())
    put("tokenize", "invalid", b"\x07ok \xff\xfe bad \xc3( \xe2\x82 \xf0\x9f\x98 end")
    put("tokenize", "long", b"\x03" + b"the tumour cells " * 20)


def seed_tables():
    put("tables", "labels", b"\x00name,label\nslide_a,0\nslide_b,1\n\"slide,c\",1\nslide_d,0\nslide_e,0\nslide_f,1\n")
    put("tables", "labels_bom_crlf", b"\x00\xef\xbb\xbfcase,label,name\r\nx,1,s1\r\ny,0,s2\r\n")
    split = {"train_0": ["a", "b"], "val_0": ["c"], "test_0": ["d"], "train_1": ["c"], "val_1": ["a"], "test_1": ["b", "d"]}
    put("tables", "split", b"\x01" + json.dumps(split).encode())
    put("tables", "instance", b"\x02" + json.dumps(["tumour cells", "stroma", "necrosis"]).encode())
    put("tables", "bag", b'\x03"a text, with comma"\n"another ""quoted"" text"\nplain\n')
    put("tables", "csv", b'\x04a,"b\nc",d\r\n,,\n"x"  ,y\n')


def seed_image():
    """Small real PNG / JPEG / BMP images (tissue-like pink blobs on white) made with Pillow."""
    import io
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (48, 40), (245, 245, 245))
    d = ImageDraw.Draw(img)
    d.ellipse((6, 5, 38, 33), fill=(200, 90, 160))
    d.ellipse((16, 14, 24, 22), fill=(250, 250, 250))
    d.line((0, 39, 47, 0), fill=(40, 160, 90), width=2)
    for k, (fmt, opts) in enumerate([("PNG", {}), ("JPEG", {"quality": 85}), ("BMP", {})]):
        b = io.BytesIO()
        img.save(b, fmt, **opts)
        put("image", fmt.lower(), bytes([k * 37 % 256]) + b.getvalue())
    b = io.BytesIO()
    img.convert("RGBA").save(b, "PNG")
    put("image", "rgba", b"\xc5" + b.getvalue())


for t in targets:
    {"safetensors": seed_safetensors, "pt": seed_pt, "hdf5": seed_hdf5, "tokenizer_file": seed_tokenizer_file,
     "tokenize": seed_tokenize, "tables": seed_tables, "image": seed_image}[t]()
