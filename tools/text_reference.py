#!/usr/bin/env python3
"""Independent PyTorch forwards of libramil's text encoders, the references the C++ encoders
(models/text/text_bert.cpp, models/text/text_conch.cpp) are tested and benchmarked against.

  text_reference.py encode ENCODER.safetensors TEXTS.json OUT.safetensors [--threads N]
      ENCODER: a file written by tools/convert_weights.py. TEXTS.json: a JSON list of strings.
      Tokenises with HF `tokenizers` from the tokenizer json stored in the file's metadata and
      writes OUT.safetensors with "embeddings" (K, D) float32 (L2-normalised rows) and
      "lengths" (K,) int64 (token count before truncation).
  text_reference.py make-conch OUT.bin [--layers N] [--seed S]
      A randomly initialised CONCH checkpoint (torch.save of a state_dict) with CONCH's key
      names and shapes (vocab 32007, width 768, context 128, projection 512) and N residual
      blocks, plus a few unrelated `visual.` keys.

BERT: embeddings (word + position + token type 0, LayerNorm), post-LN blocks (self-attention
with an additive padding mask, GELU MLP), mean pooling over non-pad tokens, L2 normalise.
Written with plain tensor ops (no `transformers`).
CONCH: the CoCa/open_clip text tower as CONCH runs it: tokenizer.batch_encode_plus(
max_length=127, padding='max_length', truncation=True), one pad appended, the last id dropped,
cls_emb appended, causal mask + open_clip's build_cls_mask, nn.MultiheadAttention's functional
form, ln_final on the CLS token, @ text_projection, F.normalize.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F


def load_encoder(path):
    from safetensors import safe_open
    tensors = {}
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    if "libramil.encoder" not in meta:
        sys.exit(f"text_reference: {path}: no 'libramil.encoder' metadata")
    return tensors, meta


def hf_tokenizer(meta):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_str(meta["libramil.tokenizer"])
    tok.no_padding()
    tok.no_truncation()
    return tok


# ---- BERT --------------------------------------------------------------------------------
def bert_forward(W, meta, texts):
    tok = hf_tokenizer(meta)
    context = int(meta["libramil.context"])
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    tok.enable_truncation(max_length=context)
    encs = tok.encode_batch(texts)
    pad_id = tok.token_to_id("[PAD]") or 0
    L = max(len(e.ids) for e in encs)
    ids = torch.full((len(texts), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(texts), L), dtype=torch.float32)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1.0
    H = int(meta["libramil.heads"])
    D = int(meta["libramil.width"])
    n_layers = int(meta["libramil.layers"])
    eps = float(meta["libramil.layer_norm_eps"])
    B = len(texts)
    pos = torch.arange(L)
    x = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][pos][None]
         + W["embeddings.token_type_embeddings.weight"][0][None, None])
    x = F.layer_norm(x, (D,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    add_mask = torch.zeros((B, 1, 1, L))
    add_mask[mask[:, None, None, :] == 0] = torch.finfo(torch.float32).min
    dh = D // H
    for i in range(n_layers):
        p = f"encoder.layer.{i}."

        def lin(t, name):
            return t @ W[p + name + ".weight"].T + W[p + name + ".bias"]

        def heads(t):
            return t.view(B, L, H, dh).permute(0, 2, 1, 3)
        q = heads(lin(x, "attention.self.query"))
        k = heads(lin(x, "attention.self.key"))
        v = heads(lin(x, "attention.self.value"))
        s = (q @ k.transpose(-1, -2)) / (dh ** 0.5) + add_mask
        ctx = (torch.softmax(s, -1) @ v).permute(0, 2, 1, 3).reshape(B, L, D)
        x = F.layer_norm(lin(ctx, "attention.output.dense") + x, (D,),
                         W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(lin(x, "intermediate.dense"))
        x = F.layer_norm(lin(h, "output.dense") + x, (D,),
                         W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    m = mask[:, :, None]
    pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, dim=-1), lengths


# ---- CONCH -------------------------------------------------------------------------------
def conch_tokenize(meta, texts):
    tok = hf_tokenizer(meta)
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    pad_id = tok.token_to_id("<pad>")
    pad_id = 0 if pad_id is None else pad_id
    tok.enable_truncation(max_length=127)
    tok.enable_padding(length=127, pad_id=pad_id, pad_token="<pad>")
    ids = torch.tensor([e.ids for e in tok.encode_batch(texts)], dtype=torch.long)
    ids = F.pad(ids, (0, 1), value=pad_id)  # CONCH's tokenize(): one more pad -> 128
    return ids, pad_id, lengths


def build_cls_mask(text, pad_id, heads, dtype):
    """open_clip TextTransformer.build_cls_mask, verbatim in effect."""
    cls_mask = (text != pad_id).unsqueeze(1)
    cls_mask = F.pad(cls_mask, (1, 0, cls_mask.shape[2], 0), value=True)
    additive_mask = torch.empty(cls_mask.shape, dtype=dtype)
    additive_mask.fill_(0)
    additive_mask.masked_fill_(~cls_mask, float("-inf"))
    return torch.repeat_interleave(additive_mask, heads, 0)


def conch_forward(W, meta, texts, ids=None):
    if ids is None:
        ids, pad_id, lengths = conch_tokenize(meta, texts)
    else:
        pad_id, lengths = 0, [ids.shape[1]] * ids.shape[0]
    H = int(meta["libramil.heads"])
    D = int(meta["libramil.width"])
    n_layers = int(meta["libramil.layers"])
    eps = float(meta["libramil.layer_norm_eps"])
    text = ids[:, :-1]  # CONCH encode_text: drop the last id (127 ids)
    B, seq_len = text.shape
    x = W["token_embedding.weight"][text]
    x = torch.cat([x, W["cls_emb"].view(1, 1, D).expand(B, 1, D)], dim=1)
    seq_len += 1
    causal = torch.full((seq_len, seq_len), float("-inf")).triu_(1)
    attn_mask = causal[None] + build_cls_mask(text, pad_id, H, x.dtype)[:, :seq_len, :seq_len]
    x = x + W["positional_embedding"][:seq_len]
    x = x.permute(1, 0, 2)  # (L, B, D) as nn.MultiheadAttention (batch_first=False) expects
    for i in range(n_layers):
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (D,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        a, _ = F.multi_head_attention_forward(
            h, h, h, D, H, W[p + "attn.in_proj_weight"], W[p + "attn.in_proj_bias"], None, None, False, 0.0,
            W[p + "attn.out_proj.weight"], W[p + "attn.out_proj.bias"], training=False, need_weights=False,
            attn_mask=attn_mask)
        x = x + a
        h = F.layer_norm(x, (D,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, W[p + "mlp.c_fc.weight"], W[p + "mlp.c_fc.bias"])),
                     W[p + "mlp.c_proj.weight"], W[p + "mlp.c_proj.bias"])
        x = x + h
    x = x.permute(1, 0, 2)
    pooled = F.layer_norm(x[:, -1], (D,), W["ln_final.weight"], W["ln_final.bias"], eps)
    pooled = pooled @ W["text_projection"]
    return F.normalize(pooled, dim=-1), lengths


def encode(path, texts):
    W, meta = load_encoder(path)
    with torch.no_grad():
        if meta["libramil.encoder"] == "bert":
            return bert_forward(W, meta, texts)
        if meta["libramil.encoder"] == "conch":
            return conch_forward(W, meta, texts)
    sys.exit(f"text_reference: {path}: unknown encoder kind {meta['libramil.encoder']!r}")


# ---- random CONCH checkpoint -------------------------------------------------------------
def make_conch(out, layers=2, seed=0, vocab=32007, width=768, context=128, embed_dim=512, mlp=3072):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean
    proj_std = (width ** -0.5) * ((2 * layers) ** -0.5)
    attn_std = width ** -0.5
    fc_std = (2 * width) ** -0.5
    sd = {
        "text.token_embedding.weight": randn(vocab, width, std=0.02),
        "text.positional_embedding": randn(context, width, std=0.01),
        "text.cls_emb": randn(width, std=0.01),
    }
    for i in range(layers):
        p = f"text.transformer.resblocks.{i}."
        sd[p + "ln_1.weight"] = randn(width, std=0.1, mean=1.0)
        sd[p + "ln_1.bias"] = randn(width, std=0.05)
        sd[p + "attn.in_proj_weight"] = randn(3 * width, width, std=attn_std)
        sd[p + "attn.in_proj_bias"] = randn(3 * width, std=0.02)
        sd[p + "attn.out_proj.weight"] = randn(width, width, std=proj_std)
        sd[p + "attn.out_proj.bias"] = randn(width, std=0.02)
        sd[p + "ln_2.weight"] = randn(width, std=0.1, mean=1.0)
        sd[p + "ln_2.bias"] = randn(width, std=0.05)
        sd[p + "mlp.c_fc.weight"] = randn(mlp, width, std=fc_std)
        sd[p + "mlp.c_fc.bias"] = randn(mlp, std=0.02)
        sd[p + "mlp.c_proj.weight"] = randn(width, mlp, std=proj_std)
        sd[p + "mlp.c_proj.bias"] = randn(width, std=0.02)
    sd["text.ln_final.weight"] = randn(width, std=0.1, mean=1.0)
    sd["text.ln_final.bias"] = randn(width, std=0.05)
    sd["text.text_projection"] = randn(width, embed_dim, std=width ** -0.5)
    # Unrelated towers that the converter must ignore.
    sd["visual.trunk.patch_embed.proj.weight"] = randn(16, 3, 4, 4)
    sd["visual.attn_pool_contrast.attn.in_proj_weight"] = randn(48, 16)
    sd["visual.ln_contrast.weight"] = randn(16)
    sd["logit_scale"] = torch.tensor(4.6)
    torch.save(sd, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode")
    e.add_argument("encoder")
    e.add_argument("texts")
    e.add_argument("output")
    e.add_argument("--threads", type=int, default=0)
    m = sub.add_parser("make-conch")
    m.add_argument("output")
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "make-conch":
        make_conch(a.output, a.layers, a.seed)
        return 0
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with open(a.texts, encoding="utf-8") as f:
        texts = json.load(f)
    emb, lengths = encode(a.encoder, texts)
    from safetensors.torch import save_file
    save_file({"embeddings": emb.contiguous().float(), "lengths": torch.tensor(lengths, dtype=torch.int64)},
              a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
