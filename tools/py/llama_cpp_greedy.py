#!/usr/bin/env python3
"""Shows that llama.cpp loads a model written by `mote convert` and generates the same greedy tokens as
Hugging Face transformers running the original checkpoint.

    python3 tools/py/llama_cpp_greedy.py HF_DIR [--type f32|f16|q8_0] [--bin /opt/llama.cpp/bin]
        [--mote target/release/mote] [--prompt "Once upon a time"] [-n 24]

Steps: convert HF_DIR with mote; greedy-generate n tokens with transformers (float32, do_sample=False);
run `llama-simple` (greedy sampler) on the GGUF with the same prompt; compare the generated text (the
tokens decoded; llama-simple prints text only). With --type f32 the two should agree exactly; Q8_0
may legitimately flip a near-tie in a random-weight model, so the script reports the first divergence.
Exit status 0 when the texts match.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir", type=Path)
    ap.add_argument("--type", default="f32", choices=["f32", "f16", "q8_0"])
    ap.add_argument("--bin", type=Path, default=Path("/opt/llama.cpp/bin"))
    ap.add_argument("--mote", default="target/release/mote")
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("-n", type=int, default=24)
    a = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(a.hf_dir)
    model = GPT2LMHeadModel.from_pretrained(a.hf_dir, torch_dtype=torch.float32).eval()
    ids = tok(a.prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=a.n, do_sample=False, pad_token_id=tok.eos_token_id)
    hf_tokens = out[0, ids.shape[1]:].tolist()
    hf_text = tok.decode(hf_tokens)

    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / "model.gguf"
        subprocess.run([a.mote, "convert", a.hf_dir, "-o", gguf, "--type", a.type], check=True)
        r = subprocess.run([a.bin / "llama-simple", "-m", gguf, "-n", str(a.n), a.prompt],
                           capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"llama-simple failed:\n{r.stderr[-2000:]}")
    ll_text = r.stdout
    if ll_text.startswith(a.prompt):
        ll_text = ll_text[len(a.prompt):]
    print(f"transformers tokens: {hf_tokens}")
    print(f"transformers text:   {hf_text!r}")
    print(f"llama.cpp text:      {ll_text.rstrip(chr(10))!r}")
    if ll_text.rstrip("\n") == hf_text:
        print(f"MATCH: {a.n} greedy tokens identical ({a.type})")
        return
    i = next((k for k, (x, y) in enumerate(zip(hf_text, ll_text)) if x != y), min(len(hf_text), len(ll_text)))
    sys.exit(f"DIFFER at character {i}")


if __name__ == "__main__":
    main()
