#!/usr/bin/env python3
"""Train mote's embedded story model: a byte-level BPE tokenizer and a tiny GPT-2, on CPU.

The model has to fit a 1 MB-flash / 256 KB-RAM board, so this script refuses any configuration whose
estimated Q8_0 GGUF or run state breaks mote's budgets (see `budget()`), and stops training when the
wall-time budget runs out.

Data: TinyStories heads from ../shared/data/tinystories (relative to the repository root, never copied
into the repository). The tokenizer and the model see only the train head; the validation head is used
for measuring only.

Validation loss is computed the way `mote eval` does it: the whole validation file is tokenized as one
stream (no BOS), cut into consecutive non-overlapping windows of n_ctx tokens, each window is run with
teacher forcing and every token after the first of its window is predicted; the loss is the mean
negative log-likelihood (nats) over all predicted tokens, perplexity = exp(loss). Because losses per
token are not comparable between vocabularies, nats per UTF-8 byte of the predicted tokens is reported
too.

Usage: python tools/py/train.py --help
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """../shared/data/tinystories from the repository root; a git worktree nested deeper (such as
    wt/NAME) finds it in the nearest ancestor that has shared/data."""
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "data" / "tinystories"
        if candidate.is_dir():
            return candidate
    return REPO_ROOT.parent / "shared" / "data" / "tinystories"


DEFAULT_DATA_DIR = default_data_dir()
EOT = "<|endoftext|>"

# Budgets from issue 6: model + firmware in 1 MB of flash, run state in 256 KB of RAM with stack.
MAX_GGUF_BYTES = 900 * 1000
MAX_RUN_STATE_BYTES = 160 * 1000
MAX_TRAIN_SECONDS = 40 * 60
MIN_N_CTX = 128
Q8_0_BLOCK = 32  # values per Q8_0 block
Q8_0_BLOCK_BYTES = 34  # f16 scale + 32 x i8
GGUF_SLACK_BYTES = 20 * 1000  # other metadata keys, header, tensor infos, alignment


# ---------------------------------------------------------------------------------------------------
# Budgets


@dataclass(frozen=True)
class Arch:
    """The hyper-parameters that decide the sizes (n_inner is always 4 * n_embd)."""

    n_vocab: int
    n_ctx: int
    n_embd: int
    n_layer: int
    n_head: int

    @property
    def n_inner(self) -> int:
        return 4 * self.n_embd

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


def q8_0_bytes(n_params: int) -> int:
    """Bytes of a Q8_0 matrix whose rows are a multiple of 32 long."""
    assert n_params % Q8_0_BLOCK == 0
    return n_params // Q8_0_BLOCK * Q8_0_BLOCK_BYTES


def param_counts(a: Arch) -> dict:
    """Parameters of a GPT-2 with tied lm_head, split into Q8_0 matrices and f32 vectors."""
    c, l = a.n_embd, a.n_layer
    matrices = {
        "wte": a.n_vocab * c,
        "wpe": a.n_ctx * c,
        "c_attn": l * c * 3 * c,
        "attn.c_proj": l * c * c,
        "c_fc": l * c * a.n_inner,
        "mlp.c_proj": l * a.n_inner * c,
    }
    # per layer: ln_1 (2c), c_attn bias (3c), attn c_proj bias (c), ln_2 (2c), c_fc bias (4c),
    # mlp c_proj bias (c); then ln_f (2c)
    vectors = l * (2 * c + 3 * c + c + 2 * c + a.n_inner + c) + 2 * c
    return {"matrices": matrices, "matrix_params": sum(matrices.values()), "vector_params": vectors,
            "total": sum(matrices.values()) + vectors}


def tokenizer_gguf_bytes(tokens: list[str], merges: list[str]) -> int:
    """GGUF bytes of tokenizer.ggml.tokens / token_type / merges plus the device's index tables."""
    tok = sum(8 + len(t.encode("utf-8")) + 4 for t in tokens)
    mer = sum(8 + len(m.encode("utf-8")) for m in merges)
    tables = 8 * len(tokens) + 8 * len(merges)
    return tok + mer + tables


def budget(a: Arch, tokens: list[str] | None = None, merges: list[str] | None = None) -> dict:
    """Estimated Q8_0 GGUF size and run-state size, and the list of limits the config breaks.

    Without a tokenizer, its metadata is guessed at 20 bytes per token and 20 per merge.
    """
    p = param_counts(a)
    weights = sum(q8_0_bytes(n) for n in p["matrices"].values()) + 4 * p["vector_params"]
    if tokens is None:
        tok_bytes = 20 * a.n_vocab + 20 * max(a.n_vocab - 257, 0)
    else:
        tok_bytes = tokenizer_gguf_bytes(tokens, merges or [])
    gguf = weights + tok_bytes + GGUF_SLACK_BYTES
    kv = q8_0_bytes(2 * a.n_layer * a.n_ctx * a.n_embd)
    # x, residual, ln out, attn out (4 * n_embd) + MLP hidden + attention scores + logits, all f32,
    # plus the activation vector quantized to Q8_0 for the widest matvec input (n_inner).
    acts = 4 * (4 * a.n_embd + a.n_inner + a.n_head * a.n_ctx + a.n_vocab) + q8_0_bytes(a.n_inner)
    run_state = kv + acts
    problems = []
    if gguf > MAX_GGUF_BYTES:
        problems.append(f"Q8_0 GGUF ~{gguf} B > {MAX_GGUF_BYTES} B")
    if run_state > MAX_RUN_STATE_BYTES:
        problems.append(f"run state ~{run_state} B > {MAX_RUN_STATE_BYTES} B")
    if a.n_ctx < MIN_N_CTX:
        problems.append(f"n_ctx {a.n_ctx} < {MIN_N_CTX}")
    if a.n_embd % a.n_head != 0:
        problems.append(f"n_embd {a.n_embd} is not divisible by n_head {a.n_head}")
    elif a.head_size % 32 != 0:
        problems.append(f"head size {a.head_size} is not a multiple of 32")
    if a.n_embd % 32 != 0:
        problems.append(f"n_embd {a.n_embd} is not a multiple of 32")
    return {
        "params": p["total"],
        "matrix_params": p["matrix_params"],
        "vector_params": p["vector_params"],
        "gguf_weights_bytes": weights,
        "gguf_tokenizer_bytes": tok_bytes,
        "gguf_slack_bytes": GGUF_SLACK_BYTES,
        "gguf_q8_0_bytes_est": gguf,
        "kv_cache_q8_0_bytes": kv,
        "activations_bytes": acts,
        "run_state_bytes_est": run_state,
        "problems": problems,
    }


# ---------------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(train_path: Path, vocab_size: int):
    """GPT-2 style byte-level BPE: GPT-2 regex, no prefix space, all 256 bytes, <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train([str(train_path)], trainer)
    return tok


def wrap_tokenizer(tok, n_ctx: int):
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        model_max_length=n_ctx,
        add_prefix_space=False,
    )


def vocab_and_merges(tok) -> tuple[list[str], list[str]]:
    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    for added in state.get("added_tokens", []):
        if added["id"] >= len(tokens):
            tokens.append(added["content"])
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    return tokens, merges


# ---------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, n_ctx: int, token_bytes: torch.Tensor, max_windows: int | None = None,
             batch_size: int = 32) -> dict:
    """Mean NLL over every predicted token of consecutive non-overlapping n_ctx windows (teacher forcing)."""
    model.eval()
    n = ids.numel()
    starts = list(range(0, n - 1, n_ctx))  # a last window needs >= 2 tokens to predict anything
    if max_windows is not None:
        starts = starts[:max_windows]
    total_nll = 0.0
    total_tokens = 0
    total_bytes = 0
    full = [s for s in starts if s + n_ctx <= n]
    for i in range(0, len(full), batch_size):
        x = torch.stack([ids[s:s + n_ctx] for s in full[i:i + batch_size]])
        logits = model(input_ids=x).logits[:, :-1].float()
        y = x[:, 1:]
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
        total_nll += nll.item()
        total_tokens += y.numel()
        total_bytes += token_bytes[y].sum().item()
    for s in starts:
        if s + n_ctx > n:  # the partial last window
            x = ids[s:].unsqueeze(0)
            logits = model(input_ids=x).logits[:, :-1].float()
            y = x[:, 1:]
            total_nll += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                                         reduction="sum").item()
            total_tokens += y.numel()
            total_bytes += token_bytes[y].sum().item()
    model.train()
    loss = total_nll / total_tokens
    return {"loss": loss, "perplexity": math.exp(loss), "nats_per_byte": total_nll / total_bytes,
            "windows": len(starts), "predicted_tokens": total_tokens}


# ---------------------------------------------------------------------------------------------------
# Samples

OPENINGS = ["Once upon a time", "Tom and his dog", "The little girl", "One day, a cat", "Lily wanted to"]
SAMPLE_NEW_TOKENS = 48


@torch.no_grad()
def greedy_samples(model_dir: Path) -> list[dict]:
    """Greedy continuations (do_sample=False, 48 new tokens) of the story openings, from the saved
    checkpoint, so that they show what `mote convert` will read."""
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(model_dir)
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    out = []
    for opening in OPENINGS:
        enc = tok(opening, return_tensors="pt")
        ids = model.generate(**enc, do_sample=False, max_new_tokens=SAMPLE_NEW_TOKENS,
                             min_new_tokens=SAMPLE_NEW_TOKENS, pad_token_id=tok.eos_token_id)
        out.append({"opening": opening, "prompt_ids": enc["input_ids"][0].tolist(),
                    "new_ids": ids[0, enc["input_ids"].shape[1]:].tolist(),
                    "text": tok.decode(ids[0])})
    return out


# ---------------------------------------------------------------------------------------------------
# Training


def lr_at(step: int, args) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cos)


def set_seeds(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--train-file", default="tinystories_train_head.txt")
    p.add_argument("--val-file", default="tinystories_validation_head.txt")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    # Numeric settings: (flag, default, help); the type is the default's.
    for flag, default, help_ in [
        ("--vocab-size", 1024, None), ("--n-ctx", 128, None), ("--n-embd", 128, None),
        ("--n-layer", 3, None), ("--n-head", 4, None),
        ("--batch-size", 32, "sequences of n_ctx tokens per step"), ("--steps", 2000, None),
        ("--lr", 3e-3, None), ("--min-lr-ratio", 0.1, "final lr / peak lr"), ("--warmup-steps", 100, None),
        ("--weight-decay", 0.1, None), ("--beta1", 0.9, None), ("--beta2", 0.99, None),
        ("--grad-clip", 1.0, None), ("--init-std", 0.02, "GPT2Config.initializer_range"),
        ("--seed", 1337, None), ("--threads", 2, None),
    ]:
        p.add_argument(flag, type=type(default), default=default, help=help_)
    p.add_argument("--time-budget-min", type=float, default=40.0,
                   help="stop training when this many minutes have passed (at most 40)")
    p.add_argument("--eval-interval", type=int, default=200)
    p.add_argument("--eval-windows", type=int, default=200,
                   help="validation windows used for the periodic check (the final one uses all)")
    p.add_argument("--log-interval", type=int, default=50)
    p.add_argument("--final-eval-windows", type=int, default=None,
                   help="pilot runs: final validation over only the first N windows (default: all)")
    p.add_argument("--skip-train-eval", action="store_true",
                   help="pilot runs: skip the final loss over the train file (an overfitting check)")
    p.add_argument("--check-only", action="store_true", help="train the tokenizer, print budgets, stop")
    p.add_argument("--no-save", action="store_true", help="do not save the checkpoint (pilot runs)")
    p.add_argument("--samples-only", action="store_true",
                   help="print the greedy samples of the checkpoint already in --out, and stop")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.samples_only:
        torch.set_num_threads(args.threads)
        for s in greedy_samples(args.out):
            print(json.dumps(s["text"]))
        return 0
    if args.time_budget_min * 60 > MAX_TRAIN_SECONDS:
        sys.exit(f"--time-budget-min {args.time_budget_min} is over the {MAX_TRAIN_SECONDS // 60}-minute budget")
    arch = Arch(args.vocab_size, args.n_ctx, args.n_embd, args.n_layer, args.n_head)
    pre = budget(arch)
    if pre["problems"]:
        sys.exit("refusing this config: " + "; ".join(pre["problems"]))

    torch.set_num_threads(args.threads)
    set_seeds(args.seed)
    train_path = args.data_dir / args.train_file
    val_path = args.data_dir / args.val_file
    train_text = train_path.read_text(encoding="utf-8")
    val_text = val_path.read_text(encoding="utf-8")

    t0 = time.time()
    tok = train_tokenizer(train_path, args.vocab_size)
    tokens, merges = vocab_and_merges(tok)
    if len(tokens) != args.vocab_size:
        sys.exit(f"the tokenizer has {len(tokens)} tokens, not --vocab-size {args.vocab_size}; "
                 "the train file has too few distinct pairs for this vocabulary")
    b = budget(arch, tokens, merges)
    print(f"tokenizer: {len(tokens)} tokens, {len(merges)} merges ({time.time() - t0:.1f} s)")
    print("budget: " + json.dumps({k: v for k, v in b.items() if k != "problems"}))
    if b["problems"]:
        sys.exit("refusing this config: " + "; ".join(b["problems"]))

    train_ids = torch.tensor(tok.encode(train_text).ids, dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text).ids, dtype=torch.long)
    token_bytes = torch.tensor([len(bytes(tok.decode([i]), "utf-8")) if tokens[i] != EOT else 0
                                for i in range(len(tokens))], dtype=torch.long)
    print(f"train: {len(train_text.encode())} bytes -> {train_ids.numel()} tokens "
          f"({len(train_text.encode()) / train_ids.numel():.2f} B/token); "
          f"val: {len(val_text.encode())} bytes -> {val_ids.numel()} tokens")
    if args.check_only:
        return 0

    from transformers import GPT2Config, GPT2LMHeadModel

    eot_id = tok.token_to_id(EOT)
    config = GPT2Config(
        vocab_size=args.vocab_size,
        n_positions=args.n_ctx,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_inner=None,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        initializer_range=args.init_std,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == b["params"], (n_params, b["params"])
    print(f"model: {n_params} parameters")

    # Weight decay on the 2-D matrices only (embeddings included), not on biases and LayerNorms.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(args.beta1, args.beta2), eps=1e-8)

    # Deterministic data order: window starts drawn from a generator seeded once.
    gen = torch.Generator().manual_seed(args.seed)
    n_starts = train_ids.numel() - args.n_ctx - 1
    offsets = torch.arange(args.n_ctx + 1)

    history = []
    model.train()
    t_train = time.time()
    stopped_early = False
    step = 0
    loss_acc, loss_n = 0.0, 0
    for step in range(args.steps):
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, n_starts, (args.batch_size,), generator=gen)
        chunk = train_ids[starts.unsqueeze(1) + offsets]
        x, y = chunk[:, :-1], chunk[:, 1:]
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        loss_acc += loss.item()
        loss_n += 1
        elapsed = time.time() - t_train
        if (step + 1) % args.log_interval == 0 or step == 0:
            rate = (step + 1) / elapsed
            eta = (args.steps - step - 1) / rate
            print(f"step {step + 1:5d}/{args.steps} train {loss_acc / loss_n:.4f} lr {lr:.2e} "
                  f"{elapsed:7.1f} s (eta {eta:6.0f} s)", flush=True)
            history.append({"step": step + 1, "train_loss": loss_acc / loss_n, "seconds": round(elapsed, 1)})
            loss_acc, loss_n = 0.0, 0
        if (step + 1) % args.eval_interval == 0 and step + 1 < args.steps:
            v = evaluate(model, val_ids, args.n_ctx, token_bytes, max_windows=args.eval_windows)
            print(f"step {step + 1:5d} val {v['loss']:.4f} (ppl {v['perplexity']:.2f}, "
                  f"{v['nats_per_byte']:.4f} nats/B, first {v['windows']} windows)", flush=True)
            history.append({"step": step + 1, "val_loss_partial": v["loss"], "windows": v["windows"]})
        if elapsed > args.time_budget_min * 60:
            print(f"time budget of {args.time_budget_min} min reached at step {step + 1}; stopping", flush=True)
            stopped_early = True
            break
    train_seconds = time.time() - t_train
    steps_done = step + 1

    t_eval = time.time()
    final = evaluate(model, val_ids, args.n_ctx, token_bytes, max_windows=args.final_eval_windows)
    train_eval = None if args.skip_train_eval else evaluate(model, train_ids, args.n_ctx, token_bytes)
    print(f"final val loss {final['loss']:.4f} ppl {final['perplexity']:.3f} "
          f"{final['nats_per_byte']:.4f} nats/B over {final['windows']} windows "
          f"({final['predicted_tokens']} tokens)"
          + ("" if train_eval is None else f"; train loss {train_eval['loss']:.4f}")
          + f" ({time.time() - t_eval:.1f} s)", flush=True)

    summary = {
        "command": "python " + " ".join([os.path.relpath(__file__, REPO_ROOT)] + (argv or sys.argv[1:])),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "arch": asdict(arch) | {"n_inner": arch.n_inner, "head_size": arch.head_size},
        "budget": b,
        "data": {
            "train_file": args.train_file, "train_bytes": len(train_text.encode()),
            "train_tokens": train_ids.numel(), "val_file": args.val_file,
            "val_bytes": len(val_text.encode()), "val_tokens": val_ids.numel(),
        },
        "params": n_params,
        "steps": steps_done,
        "tokens_seen": steps_done * args.batch_size * args.n_ctx,
        "epochs": steps_done * args.batch_size * args.n_ctx / train_ids.numel(),
        "stopped_by_time_budget": stopped_early,
        "train_seconds": round(train_seconds, 1),
        "val": final,
        "train_eval": train_eval,
        "history": history,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__,
                     "tokenizers": __import__("tokenizers").__version__, "numpy": np.__version__},
        "threads": args.threads,
        "eval_method": "whole validation file as one token stream, consecutive non-overlapping n_ctx windows, "
                       "teacher forcing, mean NLL (nats) over every token after the first of each window",
    }
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(args.out, safe_serialization=True)
        wrap_tokenizer(tok, args.n_ctx).save_pretrained(args.out)
        if not (args.out / "vocab.json").exists():
            tok.model.save(str(args.out))
        # transformers 5 no longer writes this file; older loaders and converters read it.
        special = {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}
        (args.out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_save:
        summary["samples"] = greedy_samples(args.out)
        for s in summary["samples"]:
            print("sample: " + json.dumps(s["text"]))
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
