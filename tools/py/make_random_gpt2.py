#!/usr/bin/env python3
"""Writes a randomly initialised GPT-2 checkpoint (transformers' own init, seeded) as a Hugging Face
directory, with the real GPT-2 tokenizer, for benchmarks and llama.cpp comparisons.

    python3 tools/py/make_random_gpt2.py OUT_DIR [--n-embd 768 --n-layer 12 --n-head 12 --n-positions 1024]
        [--tokenizer ../shared/data/gpt2-tokenizer] [--seed 0] [--untied]

The defaults give GPT-2 124M's shapes. The tokenizer directory may hold encoder.json + vocab.bpe
(OpenAI's names) or vocab.json + merges.txt; the output gets Hugging Face's files (vocab.json,
merges.txt, tokenizer.json, tokenizer_config.json) written by transformers, which llama.cpp's converter
needs to recognise the GPT-2 pre-tokenizer.
"""
import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

ROOT = Path(__file__).resolve().parents[2]
# shared/data beside the repository, or beside a parent folder (a git worktree).
SHARED = next((p / "shared/data" for p in ROOT.parents if (p / "shared/data").is_dir()), ROOT / "../shared/data")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--n-positions", type=int, default=1024)
    ap.add_argument("--tokenizer", type=Path, default=SHARED / "gpt2-tokenizer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--untied", action="store_true", help="write a separate lm_head.weight")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        for ours, hf in [("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt"),
                         ("vocab.json", "vocab.json"), ("merges.txt", "merges.txt")]:
            if (a.tokenizer / ours).is_file():
                shutil.copy(a.tokenizer / ours, Path(tmp) / hf)
        if not (Path(tmp) / "vocab.json").is_file() or not (Path(tmp) / "merges.txt").is_file():
            raise SystemExit(f"{a.tokenizer} has no encoder.json + vocab.bpe or vocab.json + merges.txt")
        tok = GPT2TokenizerFast.from_pretrained(tmp)

    torch.manual_seed(a.seed)
    cfg = GPT2Config(n_embd=a.n_embd, n_layer=a.n_layer, n_head=a.n_head, n_positions=a.n_positions,
                     n_ctx=a.n_positions, vocab_size=len(tok), tie_word_embeddings=not a.untied)
    model = GPT2LMHeadModel(cfg).eval()
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    tok.save_pretrained(a.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {n:,} parameters, n_embd {a.n_embd}, {a.n_layer} layers")


if __name__ == "__main__":
    main()
