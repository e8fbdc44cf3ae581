#!/usr/bin/env python3
"""Beam search speed on the desktop, side by side in one run: transformers' `generate` and
`mote generate` on the same model, one thread, the same beams and number of steps.

The model is the bundled tinystories-base: transformers runs its float32 checkpoint, mote an F32
GGUF converted from it (`mote convert --type f32`) with an f32 KV cache, so both do float32
arithmetic. The end of text is never produced within the budget (see beam_reference.py) and
`early_stopping="never"` with a positive length penalty runs every step, so both search exactly
`--tokens` steps; the two must return the same best sequence, which the script checks.

Speed is steps (one new token for every beam) per second of the whole generation, prompt
included, the best of `--repeat` runs each. Also prints what mote's reorders copied against what
copying every beam's KV cache at every step (transformers' `reorder_cache`) would have copied, and
how long this machine takes to copy each amount (numpy copies of that many bytes).

    python3 tools/py/beam_speed.py [--mote target/release/mote] [--beams 5]
"""
import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/tinystories-base"
PROMPT = "Once upon a time, there was a little girl named Lily. She"


def copy_seconds(n_bytes: int, repeat: int) -> float:
    """Best time to copy `n_bytes` between two buffers."""
    src, dst = np.ones(n_bytes, np.uint8), np.zeros(n_bytes, np.uint8)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mote", default=str(ROOT / "target/release/mote"))
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)

    model = GPT2LMHeadModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    ids = AutoTokenizer.from_pretrained(MODEL)(PROMPT, return_tensors="pt").input_ids
    settings = dict(num_beams=a.beams, length_penalty=1.0, early_stopping="never",
                    max_new_tokens=a.tokens, do_sample=False, eos_token_id=0, pad_token_id=0)
    hf_best, hf_seconds = None, float("inf")
    with torch.no_grad():
        for _ in range(a.repeat):
            t = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), **settings)
            hf_seconds = min(hf_seconds, time.perf_counter() - t)
            hf_best = out[0, ids.shape[1]:].tolist()

    with tempfile.TemporaryDirectory() as d:
        gguf = Path(d) / "f32.gguf"
        subprocess.run([a.mote, "convert", str(MODEL), "-o", str(gguf), "--type", "f32"],
                       check=True, capture_output=True)
        cmd = [a.mote, "generate", "--model", str(gguf), "--tokens",
               ",".join(map(str, ids[0].tolist())), "--max-tokens", str(a.tokens), "--kv", "f32",
               "--threads", "1", "--num-beams", str(a.beams), "--early-stopping", "never", "--json"]
        runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
                for _ in range(a.repeat)]
    best = min(runs, key=lambda j: j["generate_seconds"])
    steps = best["beam"]["steps"]
    assert best["generated_ids"] == hf_best, (best["generated_ids"], hf_best)
    assert steps == len(hf_best) == a.tokens, (steps, len(hf_best))
    mote_rate, hf_rate = steps / best["generate_seconds"], a.tokens / hf_seconds
    print(f"{a.beams} beams, {a.tokens} steps, prompt {ids.shape[1]} tokens, one thread, f32, "
          f"best of {a.repeat}; the same best sequence")
    print(f"  transformers {torch.__version__}/{__import__('transformers').__version__}: "
          f"{hf_rate:8.1f} steps/s ({hf_seconds * 1e3:.1f} ms)")
    print(f"  mote:                 {mote_rate:8.1f} steps/s ({best['generate_seconds'] * 1e3:.1f} ms)"
          f"  = {mote_rate / hf_rate:.1f}x transformers")
    rb, cb = best["beam"]["reorder_bytes"], best["beam"]["cache_copy_bytes"]
    rt, ct = copy_seconds(rb, 20), copy_seconds(cb, 20)
    print(f"  reorders copied {rb} bytes in all ({rb / steps:.0f} per step, {rt * 1e6:.1f} us to copy); "
          f"copying the caches: {cb} bytes ({cb / steps:.0f} per step, {ct * 1e6:.1f} us), "
          f"{cb / rb:.0f}x the bytes; the whole search took {best['generate_seconds'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
