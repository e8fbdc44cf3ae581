#!/usr/bin/env python3
"""Trains mote's tiny test model: a 2-layer GPT-2 on TinyStories, byte-level BPE vocab of 512.

A random-init model has near-uniform logits, so a quantized copy "agreeing on the top token" would
prove nothing; a model trained for a couple of minutes has peaked, meaningful distributions.

Writes a Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer files) to
tests/fixtures/inference/tiny-stories/. Deterministic for a given torch build: seeded, one thread, a
fixed number of steps (about 15 minutes of one core).

    python3 tools/py/make_test_models.py [--steps 1500]
    python3 tools/py/make_test_models.py --bench-models /tmp/mote-bench   # random, not committed

`--bench-models DIR` instead writes randomly initialised Q8_0 GGUF files for the speed benchmark:
`bench-1m.gguf` (about 1M parameters) and `bench-124m.gguf` (GPT-2 small's shape).

The training text is ../shared/data/tinystories/tinystories_train_head.txt; the validation head is
held out for `mote eval` (see reference.py). `--corpus shakespeare` trains on the first 90% of tiny
shakespeare instead. TinyStories is the default because its lower perplexity means fewer near-ties
between the top two tokens, which is what a Q8_0 top-1 agreement test measures.
"""
import argparse
import json
import math
import time
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel

from reference import shared_data  # tools/py/reference.py

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/inference"
# Corpora: training text and held-out text (the first used for training, the second never seen).
CORPORA = {
    "stories": ("tinystories/tinystories_train_head.txt", "tinystories/tinystories_validation_head.txt"),
    "shakespeare": ("tinyshakespeare/input.txt", None),  # held out: the last 10% of the file
}
EOT = "<|endoftext|>"
TRAIN_FRACTION = 0.9

# The shape of the model: small enough to commit (~140k parameters, ~0.6 MB as f32), with every row
# length a multiple of 32 so that Q8_0 applies to every matrix.
N_VOCAB, N_CTX, N_EMBD, N_LAYER, N_HEAD = 512, 128, 64, 2, 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500, help="optimizer steps")
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="stories", help="training text")
    ap.add_argument("--bench-models", type=Path, help="write random benchmark models here instead")
    args = ap.parse_args()
    if args.bench_models:
        return bench_models(args.bench_models)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    OUT = FIXTURES / f"tiny-{args.corpus}"
    train_file, held_out_file = CORPORA[args.corpus]
    text = (shared_data() / train_file).read_text(encoding="utf-8")
    train_text = text if held_out_file else text[:int(len(text) * TRAIN_FRACTION)]

    OUT.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator([train_text], vocab_size=N_VOCAB, min_frequency=2, special_tokens=[EOT])
    tok.save_model(str(OUT))  # vocab.json + merges.txt, the GPT-2 layout
    tok.save(str(OUT / "tokenizer.json"))
    eot_id = tok.token_to_id(EOT)
    (OUT / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": N_CTX,
        "bos_token": EOT, "eos_token": EOT, "unk_token": EOT, "add_prefix_space": False,
    }, indent=2) + "\n")

    ids = torch.tensor(tok.encode(train_text).ids, dtype=torch.long)
    print(f"{len(ids)} training tokens, vocab {tok.get_vocab_size()}, eot {eot_id}")

    config = GPT2Config(vocab_size=N_VOCAB, n_positions=N_CTX, n_embd=N_EMBD, n_layer=N_LAYER,
                        n_head=N_HEAD, bos_token_id=eot_id, eos_token_id=eot_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)
    # Linear warm-up, then cosine decay to a tenth: a peaked, well-converged small model.
    warmup = 50
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))))
    batch = 16
    start = time.time()
    for step in range(args.steps):
        ix = torch.randint(0, len(ids) - N_CTX - 1, (batch,))
        x = torch.stack([ids[i:i + N_CTX] for i in ix])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    print(f"final step {args.steps} loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(OUT, safe_serialization=True)


def bench_models(out: Path):
    """Random GPT-2s for tokens/s measurements (weights do not affect speed)."""
    import reference  # tools/py/reference.py: the GGUF writer

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    g = reference.shared_data() / "gpt2-tokenizer"
    tokens, merges = reference.gpt2_vocab(g / "encoder.json", g / "vocab.bpe")
    shapes = {
        # 1024 * 128 (wte) + 256 * 128 (wpe) + 4 * 12 * 128^2 (blocks) = 0.95M parameters.
        "bench-1m": dict(vocab_size=1024, n_positions=256, n_embd=128, n_layer=4, n_head=4),
        "bench-124m": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12),
    }
    for name, shape in shapes.items():
        eos = shape["vocab_size"] - 1
        model = GPT2LMHeadModel(GPT2Config(**shape, bos_token_id=eos, eos_token_id=eos)).eval()
        vocab = tokens[:shape["vocab_size"] - 1] + ["<|endoftext|>"] if shape["vocab_size"] < len(tokens) else tokens
        n = sum(p.numel() for p in model.parameters())
        reference.write_gguf(out / f"{name}.gguf", model, vocab, merges if vocab is tokens else [],
                             len(vocab) - 1, True, name)
        print(f"{out / name}.gguf: {n / 1e6:.2f}M parameters")


if __name__ == "__main__":
    main()
