#!/usr/bin/env python3
"""Writes a randomly initialised GPT-2 checkpoint as a Hugging Face directory, with a real byte-level
BPE tokenizer, for benchmarks and llama.cpp comparisons. Needs only numpy and safetensors (the test
Python that `cargo xtask setup` makes), not torch.

    python tools/py/make_random_gpt2.py OUT_DIR [--n-embd 768 --n-layer 12 --n-head 12 --n-positions 1024]
        [--tokenizer ../shared/data/gpt2-tokenizer] [--seed 0] [--untied]

The defaults give GPT-2 124M's shapes. The initialisation is transformers' GPT-2 scheme: weights
normal(0, 0.02), the two residual projections (`attn.c_proj`, `mlp.c_proj`) normal(0, 0.02 /
sqrt(2 n_layer)), biases 0, layer norms 1 and 0; seeded numpy, so the same seed gives the same bytes.
The tokenizer directory may hold tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe
(OpenAI's names); its files are copied under Hugging Face's names.
"""
import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
# shared/data beside the repository, or beside a parent folder (a git worktree).
SHARED = next((p / "shared/data" for p in ROOT.parents if (p / "shared/data").is_dir()), ROOT / "../shared/data")
# Our name -> Hugging Face's name for the tokenizer files that are copied.
TOKENIZER_FILES = [("tokenizer.json", "tokenizer.json"), ("tokenizer_config.json", "tokenizer_config.json"),
                   ("special_tokens_map.json", "special_tokens_map.json"), ("vocab.json", "vocab.json"),
                   ("merges.txt", "merges.txt"), ("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")]


def read_vocab(out: Path) -> dict[str, int]:
    """Every token of the copied tokenizer with its id, added tokens included."""
    ids = {}
    if (out / "vocab.json").is_file():
        ids.update(json.loads((out / "vocab.json").read_text(encoding="utf-8")))
    if (out / "tokenizer.json").is_file():
        tj = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
        ids.update(tj["model"]["vocab"])
        ids.update({t["content"]: t["id"] for t in tj.get("added_tokens", [])})
    if not ids:
        raise SystemExit(f"{out}: no tokenizer.json, vocab.json + merges.txt or encoder.json + vocab.bpe")
    return ids


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

    a.out.mkdir(parents=True, exist_ok=True)
    for ours, hf in TOKENIZER_FILES:
        if (a.tokenizer / ours).is_file() and not (a.out / hf).is_file():
            shutil.copy(a.tokenizer / ours, a.out / hf)
    vocab = read_vocab(a.out)
    n_vocab = max(vocab.values()) + 1

    rng = np.random.default_rng(a.seed)
    c, f = a.n_embd, 4 * a.n_embd
    proj_std = 0.02 / math.sqrt(2 * a.n_layer)

    def normal(std: float, *shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    t = {"transformer.wte.weight": normal(0.02, n_vocab, c),
         "transformer.wpe.weight": normal(0.02, a.n_positions, c)}
    for i in range(a.n_layer):
        h = f"transformer.h.{i}."
        t[h + "ln_1.weight"], t[h + "ln_1.bias"] = np.ones(c, np.float32), np.zeros(c, np.float32)
        t[h + "attn.c_attn.weight"], t[h + "attn.c_attn.bias"] = normal(0.02, c, 3 * c), np.zeros(3 * c, np.float32)
        t[h + "attn.c_proj.weight"], t[h + "attn.c_proj.bias"] = normal(proj_std, c, c), np.zeros(c, np.float32)
        t[h + "ln_2.weight"], t[h + "ln_2.bias"] = np.ones(c, np.float32), np.zeros(c, np.float32)
        t[h + "mlp.c_fc.weight"], t[h + "mlp.c_fc.bias"] = normal(0.02, c, f), np.zeros(f, np.float32)
        t[h + "mlp.c_proj.weight"], t[h + "mlp.c_proj.bias"] = normal(proj_std, f, c), np.zeros(c, np.float32)
    t["transformer.ln_f.weight"], t["transformer.ln_f.bias"] = np.ones(c, np.float32), np.zeros(c, np.float32)
    if a.untied:
        t["lm_head.weight"] = normal(0.02, n_vocab, c)
    save_file(t, str(a.out / "model.safetensors"), metadata={"format": "pt"})

    eos = vocab.get("<|endoftext|>", n_vocab - 1)
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
              "n_embd": c, "n_layer": a.n_layer, "n_head": a.n_head, "n_positions": a.n_positions,
              "n_ctx": a.n_positions, "n_inner": None, "vocab_size": n_vocab, "layer_norm_epsilon": 1e-5,
              "initializer_range": 0.02, "bos_token_id": eos, "eos_token_id": eos,
              "tie_word_embeddings": not a.untied, "attn_pdrop": 0.1, "embd_pdrop": 0.1, "resid_pdrop": 0.1}
    (a.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    n = sum(x.size for x in t.values())
    print(f"wrote {a.out}: {n:,} parameters, n_embd {c}, {a.n_layer} layers, vocab {n_vocab}")


if __name__ == "__main__":
    main()
