#!/usr/bin/env python3
"""PyTorch reference of CONCH's vision tower (tests/test_patch_encoder_conch.cpp), built from the
conch-fork 0.1.0 wheel's own model code, never from libramil's.

  conch_vision_reference.py SLIDE OUTDIR --at X,Y [--at X,Y ...] [--size 512] [--seed 0]
                            [--threads T] [--code DIR]

1. Builds the vision tower exactly as the wheel's CoCa does (coca_model._build_vision_tower
   with conch_ViT-B-16.json's embed_dim, vision_cfg, embed_dim_caption: timm VisionTransformer
   trunk + VisualModel with both attentional poolers) with RANDOM weights (torch seed --seed),
   redrawn so that every tensor matters and activations stay ViT-like: Linear / MHA projection
   weights normal(0, 0.02) (qkv 0.04, so that attention is not near uniform), every bias
   normal(0, 0.02), LayerNorm weights 1 + normal(0, 0.1) and biases normal(0, 0.05), cls_token
   and pos_embed normal(0, 0.02), the pooler queries normal(0, 1) (its own init), the patch
   embed conv normal(0, 0.02).
2. Saves its state dict with CONCH's `visual.` prefix (plus a stand-in `logit_scale`, a key the
   converter must ignore) as OUTDIR/pytorch_model.bin: a fake CONCH checkpoint in CONCH's key
   layout. Never CONCH's weights; OUTDIR is a scratch folder, nothing here is committed.
3. Reads the patches (--size square, level 0, top-left X,Y) with openslide-python, RGBA -> RGB.
4. features = visual.forward_no_head(x, normalize=False), which is what CoCa.encode_image(x,
   proj_contrast=False, normalize=False) returns (TRIDENT's conch_v1), on
   x = Normalize(OpenAI mean / std)(F.interpolate(patch / 255, 448, bicubic, antialias=True,
   align_corners=False)): the torch form of the wheel's transform (Resize(448) on the shorter side
   + CenterCrop(448), equal for square patches, without PIL's rounding to uint8 after the resize).
   With --pil also features_pil: the same network on the wheel's own transform
   (transform.image_transform on the PIL image), for information.
OUTDIR/reference.safetensors: "patches" (n, size, size, 3) float32 (the uint8 values), "features" (and "features_pil")
(n, 512) float32; metadata seconds_per_patch (the forward with preprocessing, median of
--repeats runs, with T torch threads), timm_version, torch_version.
--code: the folder holding the wheel's `conch/` (default $LIBRAMIL_CONCH_DIR or
<repo>/.cache/conch, + /conch_fork-0.1.0, where tools/setup_conch.sh extracts it).
"""
import argparse
import importlib
import json
import os
import sys
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CODE = os.path.join(os.environ.get("LIBRAMIL_CONCH_DIR") or os.path.join(REPO, ".cache", "conch"),
                            "conch_fork-0.1.0")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the wheel's constants.py (checked below)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def load_wheel_modules(code):
    """The wheel's open_clip_custom modules, without its package __init__ (which imports the
    tokenizer, huggingface_hub and transformers): a stand-in package over the same folder."""
    d = os.path.join(code, "conch", "open_clip_custom")
    if not os.path.isfile(os.path.join(d, "coca_model.py")):
        raise SystemExit(f"conch_vision_reference: {d}: no conch-fork model code (tools/setup_conch.sh)")
    pkg = types.ModuleType("conch_open_clip_custom")
    pkg.__path__ = [d]
    sys.modules["conch_open_clip_custom"] = pkg
    coca = importlib.import_module("conch_open_clip_custom.coca_model")
    transform = importlib.import_module("conch_open_clip_custom.transform")
    constants = importlib.import_module("conch_open_clip_custom.constants")
    with open(os.path.join(d, "model_configs", "conch_ViT-B-16.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    return coca, transform, constants, cfg


def randomize(visual, torch):
    g = torch.Generator().manual_seed(torch.initial_seed())

    def normal(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=g) * std + mean)
    norms = {f"{m}.{leaf}" if m else leaf for m, mod in visual.named_modules()
             if isinstance(mod, torch.nn.LayerNorm) for leaf in ("weight", "bias")}
    for name, p in visual.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if name in norms:
            normal(p, 0.1, 1.0) if leaf == "weight" else normal(p, 0.05)
        elif leaf == "query":
            normal(p, 1.0)
        elif name.endswith("qkv.weight"):
            normal(p, 0.04)
        else:  # other weights, every bias, cls_token, pos_embed, proj_contrast, the patch embed
            normal(p, 0.02)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("slide")
    ap.add_argument("outdir")
    ap.add_argument("--at", action="append", required=True, help="X,Y of a patch's top-left corner (level 0)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="timed forwards (the median is recorded)")
    ap.add_argument("--pil", action="store_true", help="also features_pil (the wheel's PIL transform)")
    ap.add_argument("--code", default=DEFAULT_CODE)
    a = ap.parse_args(argv)
    import numpy as np
    import openslide
    import timm
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    if a.threads:
        torch.set_num_threads(a.threads)
    coca, transform, constants, cfg = load_wheel_modules(a.code)
    if tuple(constants.OPENAI_DATASET_MEAN) != OPENAI_MEAN or tuple(constants.OPENAI_DATASET_STD) != OPENAI_STD:
        raise SystemExit("conch_vision_reference: the wheel's OpenAI mean / std are not the recorded ones")
    torch.manual_seed(a.seed)
    visual = coca._build_vision_tower(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"],
                                      embed_dim_caption=cfg["embed_dim_caption"])
    randomize(visual, torch)
    visual.eval()
    size = int(cfg["vision_cfg"]["image_size"])
    os.makedirs(a.outdir, exist_ok=True)
    state = {"visual." + k: v.clone() for k, v in visual.state_dict().items()}
    state["logit_scale"] = torch.tensor(2.6592)
    torch.save(state, os.path.join(a.outdir, "pytorch_model.bin"))

    slide = openslide.OpenSlide(a.slide)
    images, arrays = [], []
    for at in a.at:
        x, y = (int(v) for v in at.split(","))
        img = slide.read_region((x, y), 0, (a.size, a.size)).convert("RGB")
        images.append(img)
        arrays.append(np.asarray(img, dtype=np.uint8))
    patches = np.stack(arrays)
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)

    def forward_torch():
        x = torch.from_numpy(patches).permute(0, 3, 1, 2).to(torch.float32) / 255.0
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        return visual.forward_no_head((x - mean) / std, normalize=False)

    pil_transform = transform.image_transform(visual.image_size, mean=OPENAI_MEAN, std=OPENAI_STD)
    with torch.no_grad():
        times = []
        for _ in range(max(1, a.repeats)):
            t0 = time.perf_counter()
            feats = forward_torch()
            times.append(time.perf_counter() - t0)
        out = {"patches": torch.from_numpy(patches).to(torch.float32).contiguous(), "features": feats.contiguous()}
        if a.pil:
            out["features_pil"] = visual.forward_no_head(torch.stack([pil_transform(im) for im in images]),
                                                         normalize=False).contiguous()
    save_file(out,
              os.path.join(a.outdir, "reference.safetensors"),
              metadata={"seconds_per_patch": f"{sorted(times)[len(times) // 2] / len(a.at):.4f}",
                        "timm_version": timm.__version__, "torch_version": torch.__version__,
                        "threads": str(torch.get_num_threads())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
