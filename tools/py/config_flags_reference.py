#!/usr/bin/env python3
"""Writes tests/fixtures/convert-flags: small random GPT-2 checkpoints, one config.json per GPT-2 config
flag (and per combination real checkpoints use), and transformers' float32 logits for each, so that
`cargo test -p mote --test convert` can check, without Python, that `mote convert` honours every flag or
refuses the file (issue 21).

    python tools/py/config_flags_reference.py [--out tests/fixtures/convert-flags]

Needs torch and transformers at the versions pinned in tools/py/requirements.txt.

The weights are drawn wider than transformers' initialisation (matrices N(0, 0.25), layer-norm gains
1 + N(0, 0.2), biases N(0, 0.2)) so that attention is far from uniform and GELU inputs reach the region
where the exact and tanh GELUs differ most: a mis-scaled attention or a wrong activation moves the
logits by far more than the 1e-4 the test allows. Two weight files serve every case: `tied` (plain
GPT-2 shapes) and `untied` (n_inner 48 and a separate lm_head).
"""
import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parents[2]

# Small enough to commit: 64 tokens, 16 positions, n_embd 32 (head_dim 8: sqrt(8) is not a power of
# two, so the folded scale is not exact in binary), 3 layers (1/3 is not either).
SHAPE = dict(vocab_size=64, n_positions=16, n_embd=32, n_layer=3, n_head=4, bos_token_id=63, eos_token_id=63)
SEED = 21

# The original GPT-2 config.json (openai-community/gpt2) as older transformers wrote it, with fields
# transformers 5.24 no longer has, at the test's shapes.
OPENAI_FIELDS = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "embd_pdrop": 0.1, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
    "n_ctx": 16, "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "n_special": 0, "predict_special_tokens": True,
}

# Stanford CRFM's GPT-2 models trained with Mistral (e.g. stanford-crfm/alias-gpt2-small-x21).
MISTRAL_FIELDS = {
    "scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True, "n_ctx": 16,
    "gradient_checkpointing": False, "use_cache": False, "torch_dtype": "float32",
}

# (name, weights, config changes from transformers' full GPT2Config, expectation). An accepted case
# names the case whose logits mote must match (itself unless the weights or the math are another's);
# a refused one names the field the one-line error must mention.
CASES = [
    ("plain", "tied", {}, {"accepted": "plain"}),
    ("openai-gpt2-fields", "tied", OPENAI_FIELDS, {"accepted": "openai-gpt2-fields"}),
    ("scale-attn-by-inverse-layer-idx", "tied", {"scale_attn_by_inverse_layer_idx": True},
     {"accepted": "scale-attn-by-inverse-layer-idx", "folded": True}),
    ("no-scale-attn-weights", "tied", {"scale_attn_weights": False},
     {"accepted": "no-scale-attn-weights", "folded": True}),
    ("both-attention-scales", "tied", {"scale_attn_weights": False, "scale_attn_by_inverse_layer_idx": True},
     {"accepted": "both-attention-scales", "folded": True}),
    ("stanford-crfm-mistral", "tied", MISTRAL_FIELDS, {"accepted": "stanford-crfm-mistral", "folded": True}),
    ("reorder-and-upcast-attn", "tied", {"reorder_and_upcast_attn": True}, {"accepted": "reorder-and-upcast-attn"}),
    ("issue-21-row-2", "untied",
     {"activation_function": "gelu_pytorch_tanh", "n_inner": 48, "tie_word_embeddings": False,
      "reorder_and_upcast_attn": True, "layer_norm_epsilon": 1e-3},
     {"accepted": "issue-21-row-2"}),
    # mote computes the tanh GELU: its logits match plain GPT-2's, and differ from the exact GELU's by
    # the figure the converter's warning states.
    ("exact-gelu", "tied", {"activation_function": "gelu"}, {"accepted": "plain", "warning": "exact (erf) GELU"}),
    ("unknown-field", "tied", {"my_research_flag": 3}, {"accepted": "plain", "warning": "my_research_flag"}),
    ("add-cross-attention", "tied", {"add_cross_attention": True}, {"refused": "add_cross_attention"}),
    ("relu", "tied", {"activation_function": "relu"}, {"refused": "relu"}),
    ("other-model-type", "tied", {"model_type": "gpt_neo"}, {"refused": "gpt_neo"}),
    ("encoder-decoder", "tied", {"is_encoder_decoder": True}, {"refused": "is_encoder_decoder"}),
    ("pruned-heads", "tied", {"pruned_heads": {"0": [1]}}, {"refused": "pruned_heads"}),
    ("hidden-size-alias", "tied", {"hidden_size": 32}, {"refused": "hidden_size"}),
]


def byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode table: the token string of each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def tokenizer_json() -> dict:
    """Bytes 32..94 (space, punctuation, digits, capitals) and <|endoftext|>: 64 tokens, no merges."""
    tokens = byte_tokens()[32:95]
    vocab = {t: i for i, t in enumerate(tokens)}
    return {
        "version": "1.0",
        "added_tokens": [{"id": 63, "content": "<|endoftext|>", "special": True}],
        "pre_tokenizer": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": []},
    }


def widen(model: GPT2LMHeadModel) -> None:
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith(".bias"):
                p.copy_(0.2 * noise)
            elif p.dim() == 1:
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.25 * noise)


def write_weights(out: Path, name: str, **changes) -> None:
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(GPT2Config(**SHAPE, **changes))
    widen(model)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(Path(tmp) / "model.safetensors", out / f"{name}.safetensors")


def logits(hf_dir: Path, tokens: list[int]) -> torch.Tensor:
    # Eager attention: the only path where reorder_and_upcast_attn does anything.
    model = GPT2LMHeadModel.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/convert-flags")
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    (a.out / "cases").mkdir(parents=True)
    (a.out / "tokenizer.json").write_text(json.dumps(tokenizer_json(), ensure_ascii=False))
    write_weights(a.out, "tied")
    write_weights(a.out, "untied", n_inner=48, tie_word_embeddings=False)

    g = torch.Generator().manual_seed(SEED)
    tokens = torch.randint(0, SHAPE["vocab_size"], (SHAPE["n_positions"],), generator=g).tolist()
    base = GPT2Config(**SHAPE).to_dict()
    index = {
        "generated_by": "tools/py/config_flags_reference.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokens": tokens,
        "cases": [],
    }
    computed = {}
    for name, weights, changes, expect in CASES:
        config = {**base, **changes}
        case_dir = a.out / "cases" / name
        case_dir.mkdir()
        (case_dir / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
        entry = {"name": name, "weights": f"{weights}.safetensors", **expect}
        if "accepted" in expect:
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copy(case_dir / "config.json", Path(tmp) / "config.json")
                shutil.copy(a.out / f"{weights}.safetensors", Path(tmp) / "model.safetensors")
                computed[name] = logits(Path(tmp), tokens)
            (case_dir / "logits.f32").write_bytes(computed[name].numpy().astype("<f4").tobytes())
            entry["logits"] = f"cases/{expect['accepted']}/logits.f32"
            entry["transformers_logits"] = f"cases/{name}/logits.f32"
        index["cases"].append(entry)

    # How far the exact GELU is from the tanh GELU mote computes: per activation, and on these logits.
    x = torch.linspace(-10, 10, 2_000_001, dtype=torch.float64)
    gelu_gap = (torch.nn.functional.gelu(x) - torch.nn.functional.gelu(x, approximate="tanh")).abs().max().item()
    logit_gap = (computed["exact-gelu"] - computed["plain"]).abs().max().item()
    index["gelu_max_abs_difference"] = gelu_gap
    index["exact_gelu_max_abs_logit_difference"] = logit_gap
    (a.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    size = sum(p.stat().st_size for p in a.out.rglob("*") if p.is_file())
    print(f"wrote {a.out}: {len(CASES)} cases, {size:,} bytes")
    print(f"max |gelu - gelu_tanh| = {gelu_gap:.3e}; exact-gelu vs plain logits: max |diff| = {logit_gap:.3e}")


if __name__ == "__main__":
    main()
