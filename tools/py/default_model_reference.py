#!/usr/bin/env python3
"""Reference top-1 predictions of the default model (models/tinystories-base) from transformers, for
the test that mote's Q8_0 file with a Q8_0 KV cache agrees with the float model (issue 4: >= 99%).

Tokenizes the first EVAL_CHARS characters of the held-out TinyStories validation file with the
model's own Hugging Face tokenizer, runs GPT2LMHeadModel in float32 over non-overlapping windows of
the context length (teacher forcing), and writes tests/fixtures/default-model/:
eval-tokens.u32 and eval-top1.u32 (little-endian u32), the TOP_K best tokens of each prediction
with their logits (eval-topk-ids.u32, eval-topk-logits.f32: TOP_K per position, best first), for
the test that every disagreement is a near-tie, and index.json (with the mean NLL).

    python3 tools/py/default_model_reference.py
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2LMHeadModel, GPT2TokenizerFast

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/tinystories-base"
OUT = ROOT / "tests/fixtures/default-model"
EVAL_CHARS = 16384
TOP_K = 8


def shared_data() -> Path:
    for base in [ROOT, *ROOT.parents]:
        p = base / "shared/data"
        if p.is_dir():
            return p
    raise SystemExit("shared/data not found beside the repository")


def main() -> None:
    text = (shared_data() / "tinystories/tinystories_validation_head.txt").read_text()[:EVAL_CHARS]
    tok = GPT2TokenizerFast.from_pretrained(MODEL)
    ids = tok(text)["input_ids"]
    model = GPT2LMHeadModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    n_ctx = model.config.n_positions
    top1, topk_ids, topk_logits, nll, n = [], [], [], 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), n_ctx):
            w = ids[i : i + n_ctx]
            if len(w) < 2:
                continue
            logits = model(torch.tensor([w])).logits[0].float()
            top1 += logits[:-1].argmax(-1).tolist()
            best = torch.topk(logits[:-1], TOP_K, dim=-1)
            topk_ids.append(best.indices.numpy())
            topk_logits.append(best.values.numpy())
            logp = torch.log_softmax(logits[:-1], -1)
            nll -= logp[torch.arange(len(w) - 1), torch.tensor(w[1:])].sum().item()
            n += len(w) - 1
    OUT.mkdir(parents=True, exist_ok=True)
    np.asarray(ids, dtype="<u4").tofile(OUT / "eval-tokens.u32")
    np.asarray(top1, dtype="<u4").tofile(OUT / "eval-top1.u32")
    np.concatenate(topk_ids).astype("<u4").tofile(OUT / "eval-topk-ids.u32")
    np.concatenate(topk_logits).astype("<f4").tofile(OUT / "eval-topk-logits.f32")
    index = {
        "generator": "tools/py/default_model_reference.py",
        "model": "models/tinystories-base",
        "text": "tinystories/tinystories_validation_head.txt",
        "n_chars": EVAL_CHARS,
        "n_ctx": n_ctx,
        "n_tokens": len(ids),
        "n_predicted": n,
        "top_k": TOP_K,
        "mean_nll": nll / n,
        "perplexity": math.exp(nll / n),
    }
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(json.dumps(index))


if __name__ == "__main__":
    main()
