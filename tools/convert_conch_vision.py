"""CONCH's vision tower -> libramil's patch-encoder file (`convert_weights.py conch-vision`).

Input: a user's own CONCH checkpoint (pytorch_model.bin of MahmoodLab/CONCH, gated, CC BY-NC-ND
4.0: never committed, never redistributed), i.e. the state dict of the conch-fork wheel's CoCa
model (a dict with "state_dict" and a "module." prefix are accepted, as the wheel's
read_state_dict does). Only `visual.` keys are read; the caption pooler (visual.attn_pool_caption,
visual.ln_caption), the text tower and the decoder are ignored.

The key layout is the one the wheel's model code gives (open_clip_custom/coca_model.py
_build_vision_tower: timm VisionTransformer(embed_dim 768, depth 12, heads 12, mlp_ratio 4,
img_size 448, patch 16, num_classes 0, dynamic_img_size) as `visual.trunk`, VisualModel's
AttentionalPooler `visual.attn_pool_contrast` (nn.MultiheadAttention(512, 8, kdim = vdim = 768),
so separate q/k/v_proj_weight and one in_proj_bias), `visual.ln_contrast`, `visual.proj_contrast`),
listed by instantiating it with timm 0.9.16 (tools/conch_vision_reference.py keys).

Renaming (ours <- CONCH's, all float32; shapes checked against the width / layers read from
the checkpoint itself):
  patch_embed.weight|bias   <- visual.trunk.patch_embed.proj.weight|bias   (D, 3, p, p), (D)
  cls_token                 <- visual.trunk.cls_token                      (1, 1, D) -> (D)
  pos_embed                 <- visual.trunk.pos_embed                      (1, T, D) -> (T, D)
  blocks.{i}.norm1|qkv|proj|norm2.*  <- visual.trunk.blocks.{i}.norm1|attn.qkv|attn.proj|norm2.*
  blocks.{i}.fc1|fc2.*      <- visual.trunk.blocks.{i}.mlp.fc1|fc2.*
  norm.weight|bias          <- visual.trunk.norm.weight|bias
  pool.query                <- visual.attn_pool_contrast.query              (1, E)
  pool.ln_q|ln_k.*          <- visual.attn_pool_contrast.ln_q|ln_k.*
  pool.q|k|v.weight         <- visual.attn_pool_contrast.attn.q|k|v_proj_weight  (E, E), (E, D), (E, D)
  pool.q|k|v.bias           <- visual.attn_pool_contrast.attn.in_proj_bias split in three
  pool.out.weight|bias      <- visual.attn_pool_contrast.attn.out_proj.weight|bias
  ln_contrast.weight|bias   <- visual.ln_contrast.weight|bias
  proj_contrast             <- visual.proj_contrast (stored; libramil's features stop before it)
Facts not in the tensors (heads, LayerNorm eps, preprocessing) are the wheel's: conch_ViT-B-16.json
(attn_pooler_heads 8, n_queries_contrast 1, image_size 448), CoCaVisionCfg (num_heads 12), timm's
ViT LayerNorm eps 1e-6, open_clip's / torch's LayerNorm eps 1e-5 in the pooler and ln_contrast,
transform.py + factory.py (Resize(448, bicubic) on the shorter side, CenterCrop(448), ToTensor,
Normalize with OpenAI CLIP's mean / std).
"""
import json
import math
import os
import re

# OpenAI CLIP's normalisation, which factory.create_model sets as visual.image_mean / image_std.
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
TRUNK_HEAD_DIM = 64     # CoCaVisionCfg: 768 width / 12 heads
POOL_HEADS = 8          # conch_ViT-B-16.json attn_pooler_heads
TRUNK_EPS = "1e-06"     # timm VisionTransformer: partial(nn.LayerNorm, eps=1e-6)
POOL_EPS = "1e-05"      # open_clip LayerNorm / nn.LayerNorm defaults (ln_q, ln_k, ln_contrast)


def convert_conch_vision(inp, out, load_torch_state, expect, save, ConvertError, heads=None):
    state = load_torch_state(inp)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    if not any(k.startswith("visual.") for k in state):
        raise ConvertError(f"{inp}: no 'visual.' keys: not a CONCH checkpoint")
    src = inp

    def shape_of(key):
        if key not in state:
            raise ConvertError(f"{src}: missing tensor '{key}'")
        return tuple(state[key].shape)

    t = "visual.trunk."
    pw = shape_of(t + "patch_embed.proj.weight")
    if len(pw) != 4 or pw[1] != 3 or pw[2] != pw[3]:
        raise ConvertError(f"{src}: tensor '{t}patch_embed.proj.weight' has shape {list(pw)}, expected (D, 3, p, p)")
    width, patch = pw[0], pw[2]
    pos = shape_of(t + "pos_embed")
    grid = int(math.isqrt(max(pos[1] - 1, 0))) if len(pos) == 3 else 0
    if len(pos) != 3 or pos[0] != 1 or pos[2] != width or grid < 1 or grid * grid + 1 != pos[1]:
        raise ConvertError(f"{src}: tensor '{t}pos_embed' has shape {list(pos)}, expected (1, 1 + g * g, {width}) "
                           "(a class token and a square grid)")
    input_size = grid * patch
    mlp = shape_of(t + "blocks.0.mlp.fc1.weight")[0]
    idx = {int(m.group(1)) for k in state for m in [re.match(r"visual\.trunk\.blocks\.(\d+)\.", k)] if m}
    layers = max(idx) + 1 if idx else 0
    if layers == 0 or idx != set(range(layers)):
        raise ConvertError(f"{src}: trunk blocks {sorted(idx)} are not numbered 0..N-1")
    heads = heads or max(1, width // TRUNK_HEAD_DIM)
    if width % heads:
        raise ConvertError(f"{src}: width {width} is not divisible by {heads} heads")
    a = "visual.attn_pool_contrast."
    query = shape_of(a + "query")
    if len(query) != 2 or query[0] != 1:
        raise ConvertError(f"{src}: tensor '{a}query' has shape {list(query)}, expected (1, E): one contrast query")
    embed = query[1]
    if embed % POOL_HEADS:
        raise ConvertError(f"{src}: pooler width {embed} is not divisible by {POOL_HEADS} heads")

    tensors = {}

    def take(ours, theirs, shape, view=None):
        x = expect(state, theirs, shape, src)
        tensors[ours] = x.reshape(view).contiguous() if view else x

    take("patch_embed.weight", t + "patch_embed.proj.weight", (width, 3, patch, patch))
    take("patch_embed.bias", t + "patch_embed.proj.bias", (width,))
    take("cls_token", t + "cls_token", (1, 1, width), (width,))
    take("pos_embed", t + "pos_embed", (1, grid * grid + 1, width), (grid * grid + 1, width))
    for i in range(layers):
        b = f"{t}blocks.{i}."
        o = f"blocks.{i}."
        for ours, theirs, shape in (
                ("norm1.weight", "norm1.weight", (width,)), ("norm1.bias", "norm1.bias", (width,)),
                ("qkv.weight", "attn.qkv.weight", (3 * width, width)), ("qkv.bias", "attn.qkv.bias", (3 * width,)),
                ("proj.weight", "attn.proj.weight", (width, width)), ("proj.bias", "attn.proj.bias", (width,)),
                ("norm2.weight", "norm2.weight", (width,)), ("norm2.bias", "norm2.bias", (width,)),
                ("fc1.weight", "mlp.fc1.weight", (mlp, width)), ("fc1.bias", "mlp.fc1.bias", (mlp,)),
                ("fc2.weight", "mlp.fc2.weight", (width, mlp)), ("fc2.bias", "mlp.fc2.bias", (width,))):
            take(o + ours, b + theirs, shape)
    take("norm.weight", t + "norm.weight", (width,))
    take("norm.bias", t + "norm.bias", (width,))
    take("pool.query", a + "query", (1, embed))
    take("pool.ln_q.weight", a + "ln_q.weight", (embed,))
    take("pool.ln_q.bias", a + "ln_q.bias", (embed,))
    take("pool.ln_k.weight", a + "ln_k.weight", (width,))
    take("pool.ln_k.bias", a + "ln_k.bias", (width,))
    take("pool.q.weight", a + "attn.q_proj_weight", (embed, embed))
    take("pool.k.weight", a + "attn.k_proj_weight", (embed, width))
    take("pool.v.weight", a + "attn.v_proj_weight", (embed, width))
    bias = expect(state, a + "attn.in_proj_bias", (3 * embed,), src)
    for j, n in enumerate("qkv"):
        tensors[f"pool.{n}.bias"] = bias[j * embed:(j + 1) * embed].clone()
    take("pool.out.weight", a + "attn.out_proj.weight", (embed, embed))
    take("pool.out.bias", a + "attn.out_proj.bias", (embed,))
    take("ln_contrast.weight", "visual.ln_contrast.weight", (embed,))
    take("ln_contrast.bias", "visual.ln_contrast.bias", (embed,))
    take("proj_contrast", "visual.proj_contrast", (embed, embed))
    if "visual.attn_pool_contrast.attn.in_proj_weight" in state:
        raise ConvertError(f"{src}: the contrast pooler has a fused in_proj_weight: its keys and values are not "
                           f"{width} wide as CONCH's are")

    meta = {
        "libramil.kind": "patch_encoder",
        "libramil.arch": "conch_vit_b16",
        "libramil.feature_dim": embed,
        "libramil.output": "encode_image(x, proj_contrast=False, normalize=False): "
                           "ln_contrast(attn_pool_contrast(trunk(x))[:, 0]), as TRIDENT's conch_v1",
        "libramil.width": width,
        "libramil.layers": layers,
        "libramil.heads": heads,
        "libramil.mlp_dim": mlp,
        "libramil.patch_size": patch,
        "libramil.class_token": "true",
        "libramil.layer_norm_eps": TRUNK_EPS,
        "libramil.pool_heads": POOL_HEADS,
        "libramil.pool_queries": 1,
        "libramil.pool_layer_norm_eps": POOL_EPS,
        "libramil.input_size": input_size,
        "libramil.resize": "bicubic",
        "libramil.antialias": "true",
        "libramil.mean": json.dumps(OPENAI_MEAN),
        "libramil.std": json.dumps(OPENAI_STD),
        "libramil.normalization_source": "conch-fork 0.1.0 open_clip_custom/factory.py (OPENAI_DATASET_MEAN/STD) "
                                         "and transform.py (Resize bicubic, CenterCrop)",
        "libramil.source": os.path.basename(inp),
        "libramil.licence": "CONCH weights: CC BY-NC-ND 4.0 (MahmoodLab); do not commit or redistribute this file",
    }
    save(out, tensors, meta)
    return meta
