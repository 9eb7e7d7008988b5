#!/usr/bin/env python3
"""Reference token ids from Hugging Face `tokenizers` for tests/test_tokenizer.cpp.

Builds a deterministic corpus (pathology-style sentences, accents, Greek/CJK/emoji, digits,
punctuation, contractions, whitespace runs, control characters, literal special tokens, long
texts that hit truncation, random character soup) and encodes it with

  * the CONCH byte-level BPE tokenizer.json          (key "conch", if --conch)
  * the all-MiniLM-L6-v2 tokenizer.json (WordPiece)   (key "minilm_json", if --minilm-dir)
  * the same model's vocab.txt via BertWordPieceTokenizer (key "minilm_vocab", if --minilm-dir)

each without truncation ("full") and with truncation to max_length including the special
tokens ("truncated"), never padded. Writes one JSON file:
  {"seed", "texts": [...], "<key>": {"path", "max_length", "vocab_size", "full", "truncated"}}

Usage: make_tokenizer_fixtures.py --out FILE [--conch TOKENIZER_JSON] [--minilm-dir DIR]
                                  [--seed N] [--count N] [--bpe-max-length N] [--wp-max-length N]
"""
import argparse
import json
import os
import random

from tokenizers import BertWordPieceTokenizer, Tokenizer

FIXED = [
    "", " ", "   ", "\t", "\n", "\n\n", "\r\n", " \t\n ", "a", "A", "a  b", "a\tb", "a\nb", "a \n b",
    " leading space", "trailing space ", "  two leading", "double  space  inside", "tab\tseparated\tvalues",
    "line one\nline two\n\nline four", "ends with newline\n", "\tstarts with tab",
    "it's", "It's", "IT'S", "don't", "we're", "they've", "I'm", "you'll", "he'd", "'s", "'t", "''",
    "rock'n'roll", "the patient's biopsy", "o'clock", "can't won't shouldn't", "'re 've 'm 'll 'd",
    "Müller's", "naïve café", "señor Ñandú", "Ångström", "Straße", "ﬁnal ﬂow", "Ǆemal", "İstanbul",
    "ıi İI", "résumé", "crème brûlée", "Zoë", "façade", "piñata", "coöperate", "e\u0301", "A\u030a",
    "Σίσυφος ΟΔΟΣ", "αβγδε", "Ελληνικά", "ΣΑΣ σας", "Привет мир", "乳腺癌病理诊断", "病理 切片",
    "がん細胞の浸潤", "조직검사 결과", "سرطان الثدي", "कैंसर", "\u0915\u0903", "x\u20ddy", "ไทย",
    "😀", "🔬🧬", "👍🏽", "👨\u200d👩\u200d👧", "🇺🇸", "tumor 🔬 cells", "❤️", "★☆", "∑∫√∞",
    "12345", "3.14159", "1,000,000", "½ ¾", "x² + y³", "①②③", "Ⅻ", "٣٤٥", "0.5mm", "10^6",
    "!?", "...", "—", "–", "“quoted”", "«guillemets»", "(x)", "[y]", "{z}", "a/b\\c", "#hashtag",
    "@user", "$100", "€50", "100%", "a&b", "<tag>", "x=y", "a|b", "~tilde", "`back`", "^caret",
    "<start_of_text>", "<end_of_text>", "<pad>", "<|person|>", "<|mrn|>", "<|specimen_id|>",
    "<|date|>", "Dr.<|person|>said", "MRN <|mrn|> on <|date|>.", "<|date|><|date|>",
    "<start_of_text>hello<end_of_text>", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]",
    "[CLS] hello [SEP] world", "hello[MASK]world", "[cls] lowercase", "<|DATE|>",
    "\x00", "a\x00b", "\x07bell", "soft\u00adhyphen", "\ufeffBOM", "\ufffd", "zero\u200bwidth",
    "nbsp\u00a0here", "ideographic\u3000space", "thin\u2009space", "nel\u0085char", "vt\x0bff\x0c",
    "line\u2028sep", "\ue000private", "tag\U000e0041char", "\u0301leading mark",
    "HeLLo WoRLD", "ALL CAPS DIAGNOSIS", "mIxEd CaSe TeXt", "camelCaseWord", "snake_case_word",
    "a" * 99, "b" * 100, "c" * 101, "d" * 150, "supercalifragilisticexpialidocious" * 4,
    "pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism",
    "www.example.com/path?q=1&r=2", "user@example.org", "C++ and C#", "H&E", "Ki-67", "CD20+",
]

TISSUES = ["breast", "prostate", "colon", "lung", "liver", "kidney", "skin", "lymph node", "thyroid",
           "pancreas", "stomach", "bladder", "ovary", "cervix", "brain", "bone marrow"]
DIAGNOSES = ["invasive ductal carcinoma", "adenocarcinoma", "squamous cell carcinoma", "melanoma",
             "diffuse large B-cell lymphoma", "hepatocellular carcinoma", "papillary carcinoma",
             "glioblastoma", "clear cell renal cell carcinoma", "benign fibroadenoma",
             "chronic inflammation", "high-grade dysplasia", "tubular adenoma", "mesothelioma",
             "carcinoma in situ", "metastatic disease", "Hodgkin's lymphoma", "Crohn's disease"]
FINDINGS = ["Gleason score 3+4=7", "Ki-67 index 15%", "ER+/PR+/HER2-", "pT2N0M0", "mitoses 12/10 HPF",
            "margins negative (>2 mm)", "lymphovascular invasion present", "Nottingham grade 2",
            "tumor size 2.5 x 1.2 x 0.8 cm", "CD20+, CD3-", "PD-L1 TPS ≥50%", "MSI-H", "BRAF V600E",
            "necrosis ~30%", "H&E stain", "IHC: p53 (aberrant)", "TTF-1 positive", "CK7+/CK20−",
            "Breslow depth 1.2mm", "Clark level IV", "ISUP grade 3", "Fuhrman grade 2",
            "résumé of findings", "naïve T-cells", "café-au-lait spots", "Müllerian origin",
            "α-fetoprotein elevated", "β-catenin nuclear", "γδ T cells", "Ω-shaped nuclei"]
TEMPLATES = [
    "{Tissue} biopsy showing {dx}.",
    "H&E image of {tissue} tissue with {dx}; {finding}.",
    "An image of {dx} in the {tissue}.",
    "{DX} ({finding})",
    "the patient's {tissue} specimen: {dx}, {finding}, {finding2}.",
    "Final diagnosis:\n  {Tissue} - {dx}\n  Comment: {finding}",
    "it's consistent with {dx} — see {finding}!",
    "  {tissue}\t{dx}  ",
    "{dx} vs. {dx2}? Can't exclude {finding}.",
    "Specimen <|specimen_id|> received on <|date|>: {dx}.",
    "Photomicrograph ({mag}x) of {tissue}: {dx} [{finding}]",
    "{TISSUE}: {DX}",
    "{tissue} {emoji} {dx}",
    "Section {n}: {tissue}, {dx}, {pct}% tumor cellularity.",
    "病理诊断：{dx}（{tissue}）",
    "Diagnóstico: {dx} en {tissue}; índice Ki-67 {pct} %.",
]
EMOJI = ["🔬", "🧬", "😀", "👍🏽", "🩺", "💉", "❗", "✅", "🇩🇪", "👩\u200d🔬"]
SOUP = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" " * 10 + "\t\n") + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
        + list("éèêëüöäñçøåßÉÜÑÅ") + list("αβγΔΣωπ") + list("中文病理癌细胞") + list("がんカ")
        + ["😀", "🔬", "👍🏽", "\u200d", "\u00a0", "\u3000", "\u0301", "'s", "'t", "<|date|>", "[SEP]",
           "²", "½", "①", "\u2028", "\u00ad", "–", "—", "“", "”", "…", "€", "™"])


def sentence(rng):
    dx, dx2 = rng.choice(DIAGNOSES), rng.choice(DIAGNOSES)
    tissue = rng.choice(TISSUES)
    t = rng.choice(TEMPLATES)
    return t.format(tissue=tissue, Tissue=tissue.capitalize(), TISSUE=tissue.upper(), dx=dx,
                    DX=dx.upper(), dx2=dx2, finding=rng.choice(FINDINGS), finding2=rng.choice(FINDINGS),
                    mag=rng.choice([4, 10, 20, 40]), emoji=rng.choice(EMOJI), n=rng.randint(1, 99),
                    pct=rng.randint(0, 100))


def make_corpus(seed, count):
    rng = random.Random(seed)
    texts = list(FIXED)
    n_sentences = count * 5 // 10
    n_soup = count * 3 // 10
    n_long = max(100, count // 20)
    for _ in range(n_sentences):
        texts.append(sentence(rng))
    for _ in range(n_soup):
        texts.append("".join(rng.choice(SOUP) for _ in range(rng.randint(1, 60))))
    for _ in range(n_long):  # > 200 tokens: exercises truncation
        parts = [sentence(rng) for _ in range(rng.randint(15, 40))]
        texts.append(rng.choice([" ", "  ", "\n", " \n"]).join(parts))
    while len(texts) < count:
        texts.append(sentence(rng) + " " + sentence(rng))
    return texts


def encode_all(tok, texts, max_length):
    tok.no_padding()
    tok.no_truncation()
    full = [e.ids for e in tok.encode_batch(texts)]
    tok.enable_truncation(max_length=max_length)
    truncated = [e.ids for e in tok.encode_batch(texts)]
    return {"max_length": max_length, "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "full": full, "truncated": truncated}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--conch", default="")
    ap.add_argument("--minilm-dir", default="")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--count", type=int, default=2400)
    ap.add_argument("--bpe-max-length", type=int, default=127)
    ap.add_argument("--wp-max-length", type=int, default=128)
    args = ap.parse_args()

    texts = make_corpus(args.seed, args.count)
    out = {"seed": args.seed, "texts": texts}
    if args.conch:
        out["conch"] = encode_all(Tokenizer.from_file(args.conch), texts, args.bpe_max_length)
        out["conch"]["path"] = args.conch
    if args.minilm_dir:
        tj = os.path.join(args.minilm_dir, "tokenizer.json")
        out["minilm_json"] = encode_all(Tokenizer.from_file(tj), texts, args.wp_max_length)
        out["minilm_json"]["path"] = tj
        vt = os.path.join(args.minilm_dir, "vocab.txt")
        out["minilm_vocab"] = encode_all(BertWordPieceTokenizer(vt), texts, args.wp_max_length)
        out["minilm_vocab"]["path"] = vt
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
