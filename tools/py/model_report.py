#!/usr/bin/env python3
"""The figures of a model card, from a checkpoint folder that tools/py/train.py wrote.

- Validation loss of the whole validation head, the way `mote eval` computes it (see train.py):
  nats per token, perplexity, nats per UTF-8 byte of the predicted tokens, and the total NLL over all
  the file's bytes.
- Greedy samples (do_sample=False) from train.py's five story openings.
- Repetition: repeated token 4-grams per 100 generated tokens. For each opening, 100 new tokens are
  generated greedily; a generated token counts as repeated when the 4-gram of tokens that ends at it
  (prompt tokens included) already ended at an earlier position of the same text. The five texts'
  counts are summed and divided by their 500 generated tokens, times 100.

Usage: python tools/py/model_report.py models/NAME [models/OTHER ...] [--out FILE.json]
Prints one JSON object per model folder (and writes them all to --out as a list).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402  (same folder)

REPETITION_NEW_TOKENS = 100


def repeated_4grams(ids: list[int], n_prompt: int) -> int:
    """Generated positions whose ending 4-gram already ended at an earlier position."""
    seen = set()
    repeated = 0
    for i in range(3, len(ids)):
        g = tuple(ids[i - 3:i + 1])
        if g in seen and i >= n_prompt:
            repeated += 1
        seen.add(g)
    return repeated


@torch.no_grad()
def report(model_dir: Path, val_path: Path) -> dict:
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(model_dir)
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    n_ctx = model.config.n_positions
    val_text = val_path.read_text(encoding="utf-8")
    ids = torch.tensor(tok(val_text)["input_ids"], dtype=torch.long)
    eot = tok.eos_token_id
    token_bytes = train.bytes_per_token(tok.convert_ids_to_tokens(list(range(len(tok)))))
    v = train.evaluate(model, ids, n_ctx, token_bytes)
    v["total_nll"] = v["loss"] * v["predicted_tokens"]
    v["file_bytes"] = len(val_text.encode("utf-8"))
    v["nats_per_file_byte"] = v["total_nll"] / v["file_bytes"]
    v["file_tokens"] = ids.numel()

    reps, generated, texts = 0, 0, []
    for opening in train.OPENINGS:
        enc = tok(opening, return_tensors="pt")
        out = model.generate(**enc, do_sample=False, max_new_tokens=REPETITION_NEW_TOKENS,
                             min_new_tokens=REPETITION_NEW_TOKENS, pad_token_id=eot)[0].tolist()
        n_prompt = enc["input_ids"].shape[1]
        r = repeated_4grams(out, n_prompt)
        reps += r
        generated += len(out) - n_prompt
        texts.append({"opening": opening, "repeated_4grams": r, "text": tok.decode(out)})
    return {
        "model": str(model_dir),
        "params": sum(p.numel() for p in model.parameters()),
        "val_file": val_path.name,
        "val": v,
        "samples_48": [s["text"] for s in train.greedy_samples(model_dir)],
        "repetition": {"new_tokens_per_opening": REPETITION_NEW_TOKENS, "generated": generated,
                       "repeated_4grams": reps, "per_100_tokens": 100 * reps / generated, "texts": texts},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--val", type=Path, default=train.DEFAULT_DATA_DIR / "tinystories_validation_head.txt")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for m in args.models:
        r = report(m, args.val)
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
