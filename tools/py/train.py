#!/usr/bin/env python3
"""Train mote's embedded story model: a byte-level BPE tokenizer and a tiny GPT-2, on CPU.

The model has to fit a board with 1 MB of flash and 128 KiB of RAM, so this script refuses any
configuration whose estimated Q8_0 GGUF or run state breaks mote's budgets (see `budget()`;
`--max-gguf-bytes` lowers the flash budget for smaller models).

Data: TinyStories text from ../shared/data/tinystories (relative to the repository root, never copied
into the repository). `--train-mix all` (the default) trains on every distinct train story there, in
the validation file's format (see `train_text()`); `--train-mix head` on tinystories_train_head.txt alone,
as the first bundled model was. The tokenizer and the model see only train text; the validation head is
used for measuring only.

Long runs checkpoint (`--checkpoint`, every `--checkpoint-minutes`) and stop when `--time-budget-min`
runs out; `--resume` continues from the checkpoint and gives the same weights, bit for bit, as a run that
was never interrupted (same machine type, same `--threads`).

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
import hashlib
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

# Budgets: model + firmware in 1 MB of flash (issue 6); run state at full context with a Q8_0 KV cache
# in 96 KB, so that it fits beside the stack and the console on boards with 128 KiB of RAM (issue 22).
MAX_GGUF_BYTES = 900 * 1000
MAX_RUN_STATE_BYTES = 96 * 1000
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
    """Parameters of a GPT-2 with tied lm_head, split into matrices and f32 vectors. `mote convert`
    stores the matrices in Q8_0 except `wpe` (position_embd), which stays F32 as llama.cpp keeps it."""
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


def budget(a: Arch, tokens: list[str] | None = None, merges: list[str] | None = None,
           max_gguf_bytes: int = MAX_GGUF_BYTES) -> dict:
    """Estimated Q8_0 GGUF size and run-state size, and the list of limits the config breaks.

    Without a tokenizer, its metadata is guessed at 20 bytes per token and 20 per merge.
    """
    p = param_counts(a)
    weights = (sum(q8_0_bytes(n) for k, n in p["matrices"].items() if k != "wpe")
               + 4 * p["matrices"]["wpe"] + 4 * p["vector_params"])
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
    if gguf > max_gguf_bytes:
        problems.append(f"Q8_0 GGUF ~{gguf} B > {max_gguf_bytes} B")
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
        "max_gguf_bytes": max_gguf_bytes,
        "max_run_state_bytes": MAX_RUN_STATE_BYTES,
        "problems": problems,
    }


# ---------------------------------------------------------------------------------------------------
# Data

TRAIN_HEAD = "tinystories_train_head.txt"  # HF train split, stories and paragraphs split by blank lines
TRAIN_HEAD_2MIB = "tinystories_train_head_2mib.txt"  # HF train split again, longer, EOT-separated
TRAIN_V2_GPT4 = "tinystoriesv2_gpt4_train_head.txt"  # TinyStoriesV2-GPT4 train file, EOT-separated


def _paragraphs(text: str) -> list[str]:
    """The non-blank lines of a text, as they are (one line is one paragraph in every file)."""
    return [line for line in text.split("\n") if line.strip()]


def _complete_stories(text: str) -> str:
    """An EOT-separated file without what follows its last separator (a story cut by the download)."""
    return text[:text.rindex(EOT)].replace(EOT, "\n")


def _letters(line: str) -> str:
    """A paragraph's ASCII letters and digits: the same story in two files, one with its quotes mis-decoded
    (e.g. "â€œ" for a curly quote, as in the train and validation heads), gives the same string."""
    return "".join(c for c in line if c.isascii() and c.isalnum())


def load_train_text(data_dir: Path, mix: str) -> tuple[str, list[dict]]:
    """The training text and the parts it was made of.

    `head`: tinystories_train_head.txt verbatim. `all`: every distinct train story in data_dir, each story
    counted once, in the validation file's format (paragraphs and stories separated by one blank line):
    1. the train head, without its last paragraph (cut mid-story);
    2. the 2 MiB train head from the paragraph after the train head's last complete one (the two files
       start with the same stories; the 2 MiB head's copy of the cut paragraph is whole), without the
       story cut at the 2 MiB mark;
    3. the TinyStoriesV2-GPT4 head (other stories), without its last, cut story.
    """
    head = (data_dir / TRAIN_HEAD).read_text(encoding="utf-8")
    if mix == "head":
        return head, [{"file": TRAIN_HEAD, "bytes": len(head.encode()), "used_bytes": len(head.encode())}]
    assert mix == "all", mix
    head_pars = _paragraphs(head)[:-1]
    two = (data_dir / TRAIN_HEAD_2MIB).read_text(encoding="utf-8")
    two_pars = _paragraphs(_complete_stories(two))
    # Where the train head's last complete paragraphs (three, to be unambiguous) are in the 2 MiB head.
    tail = [_letters(x) for x in head_pars[-3:]]
    keys = [_letters(x) for x in two_pars]
    at = [i for i in range(len(keys) - 2) if keys[i:i + 3] == tail]
    if len(at) != 1:
        sys.exit(f"the end of {TRAIN_HEAD} is found {len(at)} times in {TRAIN_HEAD_2MIB}, not once")
    overlap = {_letters(x) for x in two_pars[:at[0] + 3]}
    missing = sum(_letters(x) not in overlap for x in head_pars)
    if missing:
        sys.exit(f"{missing} paragraphs of {TRAIN_HEAD} are not in the start of {TRAIN_HEAD_2MIB}")
    two_new = two_pars[at[0] + 3:]
    v2 = (data_dir / TRAIN_V2_GPT4).read_text(encoding="utf-8")
    v2_pars = _paragraphs(_complete_stories(v2))
    parts = [(TRAIN_HEAD, head, head_pars), (TRAIN_HEAD_2MIB, two, two_new), (TRAIN_V2_GPT4, v2, v2_pars)]
    text = "".join(p + "\n\n" for _, _, pars in parts for p in pars)
    return text, [{"file": f, "bytes": len(t.encode()), "paragraphs_used": len(pars),
                   "used_bytes": sum(len(p.encode()) + 2 for p in pars)} for f, t, pars in parts]


# ---------------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(text: str, vocab_size: int):
    """GPT-2 style byte-level BPE: GPT-2 regex, no prefix space, all 256 bytes, <|endoftext|>."""
    import tempfile

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
    with tempfile.TemporaryDirectory() as tmp:  # the trainer reads files, line by line
        path = Path(tmp) / "train.txt"
        path.write_text(text, encoding="utf-8")
        tok.train([str(path)], trainer)
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


def bytes_per_token(tokens: list[str]) -> torch.Tensor:
    """UTF-8 bytes of each token: byte-level BPE spells each byte as one character (GPT-2's
    bytes_to_unicode), so a token's length in characters is its length in bytes, also for tokens that
    hold part of a multi-byte character. The special token counts 0."""
    return torch.tensor([0 if t == EOT else len(t) for t in tokens], dtype=torch.long)


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
    p.add_argument("--train-mix", choices=["all", "head"], default="all",
                   help="all: every distinct train story in --data-dir; head: tinystories_train_head.txt only")
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
        ("--max-gguf-bytes", MAX_GGUF_BYTES, "flash budget of the Q8_0 GGUF (at most the default)"),
    ]:
        p.add_argument(flag, type=type(default), default=default, help=help_)
    p.add_argument("--time-budget-min", type=float, default=40.0,
                   help="stop training when this many minutes of this process have passed; with "
                        "--checkpoint, save it and exit so that --resume can go on")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="training state file (model, optimizer, RNG states, data position), saved every "
                        "--checkpoint-minutes and when the time budget runs out")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--stop-after-steps", type=int, default=None,
                   help="save the checkpoint after this many steps and exit (to test --resume)")
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


# The arguments that change the trained weights: a resumed run must have the same ones.
TRAINING_ARGS = ["train_mix", "vocab_size", "n_ctx", "n_embd", "n_layer", "n_head", "batch_size", "steps", "lr",
                 "min_lr_ratio", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip", "init_std",
                 "seed", "threads", "max_gguf_bytes"]


def training_args(args) -> dict:
    return {k: getattr(args, k) for k in TRAINING_ARGS} | {"data_dir": str(args.data_dir)}


def command_line(argv) -> str:
    return "python " + " ".join([os.path.relpath(__file__, REPO_ROOT)] + (argv or sys.argv[1:]))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.samples_only:
        torch.set_num_threads(args.threads)
        for s in greedy_samples(args.out):
            print(json.dumps(s["text"]))
        return 0
    if args.max_gguf_bytes > MAX_GGUF_BYTES:
        sys.exit(f"--max-gguf-bytes {args.max_gguf_bytes} is over the {MAX_GGUF_BYTES}-byte budget")
    if (args.resume or args.stop_after_steps is not None) and args.checkpoint is None:
        sys.exit("--resume and --stop-after-steps need --checkpoint")
    arch = Arch(args.vocab_size, args.n_ctx, args.n_embd, args.n_layer, args.n_head)
    pre = budget(arch, max_gguf_bytes=args.max_gguf_bytes)
    if pre["problems"]:
        sys.exit("refusing this config: " + "; ".join(pre["problems"]))

    torch.set_num_threads(args.threads)
    set_seeds(args.seed)
    ckpt = None
    if args.resume:
        ckpt = torch.load(args.checkpoint, weights_only=False)
        saved = ckpt["training_args"]
        changed = [k for k in TRAINING_ARGS if saved[k] != training_args(args)[k]]
        if changed:
            sys.exit(f"--resume: {', '.join(changed)} differ from the checkpoint's "
                     + ", ".join(f"{k}={saved[k]}" for k in changed))
    train_text, train_parts = load_train_text(args.data_dir, args.train_mix)
    val_path = args.data_dir / args.val_file
    val_text = val_path.read_text(encoding="utf-8")

    t0 = time.time()
    if ckpt is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(ckpt["tokenizer"])
    else:
        tok = train_tokenizer(train_text, args.vocab_size)
    tokens, merges = vocab_and_merges(tok)
    if len(tokens) != args.vocab_size:
        sys.exit(f"the tokenizer has {len(tokens)} tokens, not --vocab-size {args.vocab_size}; "
                 "the train file has too few distinct pairs for this vocabulary")
    b = budget(arch, tokens, merges, max_gguf_bytes=args.max_gguf_bytes)
    print(f"tokenizer: {len(tokens)} tokens, {len(merges)} merges ({time.time() - t0:.1f} s)")
    print("budget: " + json.dumps({k: v for k, v in b.items() if k != "problems"}))
    if b["problems"]:
        sys.exit("refusing this config: " + "; ".join(b["problems"]))

    train_ids = torch.tensor(tok.encode(train_text).ids, dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text).ids, dtype=torch.long)
    token_bytes = bytes_per_token(tokens)
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
    start_step = 0
    prior_seconds = 0.0
    loss_acc, loss_n = 0.0, 0
    commands = []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["data_generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        random.setstate(ckpt["python_rng"])
        np.random.set_state(ckpt["numpy_rng"])
        start_step, prior_seconds = ckpt["step"], ckpt["train_seconds"]
        loss_acc, loss_n = ckpt["loss_acc"], ckpt["loss_n"]
        history, commands = ckpt["history"], ckpt["commands"]
        print(f"resumed from {args.checkpoint} at step {start_step} ({prior_seconds:.0f} s of training)")
    commands.append(command_line(argv))

    def save_checkpoint(steps_done: int, seconds: float):
        state = {
            "training_args": training_args(args), "step": steps_done, "train_seconds": seconds,
            "model": model.state_dict(), "optimizer": opt.state_dict(), "data_generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(), "loss_acc": loss_acc, "loss_n": loss_n,
            "history": history, "commands": commands, "tokenizer": tok.to_str(),
        }
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.checkpoint.with_name(args.checkpoint.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, args.checkpoint)  # a crash while saving leaves the previous checkpoint whole
        print(f"checkpoint: step {steps_done} -> {args.checkpoint}", flush=True)

    model.train()
    t_train = time.time()
    last_checkpoint = t_train
    stopped_early = False
    step = start_step - 1
    for step in range(start_step, args.steps):
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
        session = time.time() - t_train
        elapsed = prior_seconds + session
        if (step + 1) % args.log_interval == 0 or step == 0:
            rate = (step + 1 - start_step) / session
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
        done = step + 1 == args.steps
        if session > args.time_budget_min * 60 and not done:
            print(f"time budget of {args.time_budget_min} min reached at step {step + 1}; stopping", flush=True)
            if args.checkpoint is not None:
                save_checkpoint(step + 1, elapsed)
                print("resume with the same command and --resume", flush=True)
                return 0
            stopped_early = True
            break
        if args.stop_after_steps is not None and step + 1 == args.stop_after_steps and not done:
            save_checkpoint(step + 1, elapsed)
            return 0
        if args.checkpoint is not None and time.time() - last_checkpoint > args.checkpoint_minutes * 60:
            save_checkpoint(step + 1, elapsed)
            last_checkpoint = time.time()
    train_seconds = prior_seconds + time.time() - t_train
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
        "command": commands[0],
        "resume_commands": commands[1:],
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "arch": asdict(arch) | {"n_inner": arch.n_inner, "head_size": arch.head_size},
        "budget": b,
        "data": {
            "train_mix": args.train_mix, "train_parts": train_parts,
            "train_sha256": hashlib.sha256(train_text.encode()).hexdigest(),
            "train_bytes": len(train_text.encode()),
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
        summary["weights_sha256"] = hashlib.sha256((args.out / "model.safetensors").read_bytes()).hexdigest()
        print(f"model.safetensors sha256 {summary['weights_sha256']}")
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
