#!/usr/bin/env python3
"""Checks a GGUF written by `mote convert` against the Hugging Face checkpoint it came from, using the
independent PyPI `gguf` package to read the file (not mote's reader).

    python3 tools/py/check_gguf.py MODEL.gguf HF_DIR [--tokenizer-tokens N]

Checks: llama.cpp's GPT-2 metadata keys and values from config.json; every tensor's name, type and
shape; F32 tensors exactly equal to the checkpoint (after the Conv1D transpose); F16 tensors equal to
the checkpoint rounded to f16; Q8_0 tensors within the quantization bound, per block
|x - q*d| <= d/2 (+ f32 rounding slack), and d == f16(amax/127). Prints one line per tensor and
exits non-zero on the first mismatch.
"""
import json
import sys
from pathlib import Path

import numpy as np
import gguf

CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor as float32 (numpy has no bfloat16, so BF16 is widened by hand)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = data[a:b]
        dt = info["dtype"]
        if dt == "F32":
            x = np.frombuffer(buf, "<f4")
        elif dt == "F16":
            x = np.frombuffer(buf, "<f2").astype(np.float32)
        elif dt == "BF16":
            x = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"FAIL: {name} has dtype {dt}")
        out[name] = x.reshape(info["shape"])
    return out


def gguf_name(hf: str) -> str:
    hf = hf.removeprefix("transformer.")
    fixed = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
             "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    _, i, rest = hf.split(".", 2)
    part = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
            "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    mod, kind = rest.rsplit(".", 1)
    return f"blk.{i}.{part[mod]}.{kind}"


def field(r: gguf.GGUFReader, key: str):
    f = r.fields.get(key)
    if f is None:
        sys.exit(f"FAIL: metadata key {key} missing")
    return f.contents()


def main() -> None:
    path, hf_dir = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = json.loads((hf_dir / "config.json").read_text())
    r = gguf.GGUFReader(path)
    n_embd = cfg["n_embd"]
    want = {
        "general.architecture": "gpt2",
        "gpt2.block_count": cfg["n_layer"],
        "gpt2.context_length": cfg.get("n_ctx", cfg["n_positions"]),
        "gpt2.embedding_length": n_embd,
        "gpt2.feed_forward_length": cfg.get("n_inner") or 4 * n_embd,
        "gpt2.attention.head_count": cfg["n_head"],
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "general.quantization_version": 2,
    }
    for k, v in want.items():
        got = field(r, k)
        if got != v:
            sys.exit(f"FAIL: {k} = {got!r}, expected {v!r}")
    eps = field(r, "gpt2.attention.layer_norm_epsilon")
    if np.float32(eps) != np.float32(cfg.get("layer_norm_epsilon", 1e-5)):
        sys.exit(f"FAIL: layer_norm_epsilon {eps}")
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    if len(tokens) != cfg["vocab_size"] or len(types) != len(tokens):
        sys.exit(f"FAIL: {len(tokens)} tokens, {len(types)} types, vocab_size {cfg['vocab_size']}")
    if "<|endoftext|>" in tokens and types[tokens.index("<|endoftext|>")] != 3:
        sys.exit("FAIL: <|endoftext|> is not a control token (type 3)")
    print(f"metadata ok: {len(r.fields)} keys, {len(tokens)} tokens")

    st = load_safetensors(hf_dir / "model.safetensors")
    tensors = {t.name: t for t in r.tensors}
    expected = set()
    for hf, x in st.items():
        if hf.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        name = gguf_name(hf)
        if name == "output.weight" and name not in tensors:
            continue  # tied head
        expected.add(name)
        t = tensors.get(name)
        if t is None:
            sys.exit(f"FAIL: {name} (from {hf}) missing")
        x = x.astype(np.float32)
        if hf.endswith(CONV1D):
            x = x.T
        x = np.ascontiguousarray(x)
        # gguf's reader gives the numpy shape (reversed ne), i.e. the same rows x cols as x.
        ty = t.tensor_type
        if ty == gguf.GGMLQuantizationType.F32:
            y = np.asarray(t.data).reshape(x.shape)
            if not np.array_equal(x, y):
                sys.exit(f"FAIL: {name} F32 differs, max |diff| {np.abs(x - y).max()}")
            detail = "exact"
        elif ty == gguf.GGMLQuantizationType.F16:
            y = np.asarray(t.data).reshape(x.shape)
            if not np.array_equal(x.astype(np.float16), y):
                sys.exit(f"FAIL: {name} F16 is not the f16 rounding of the checkpoint")
            detail = "exact f16 rounding"
        elif ty == gguf.GGMLQuantizationType.Q8_0:
            raw = np.asarray(t.data).reshape(-1, 34)
            d = raw[:, :2].copy().view(np.float16).astype(np.float32)[:, 0]
            q = raw[:, 2:].copy().view(np.int8).astype(np.float32)
            xb = x.reshape(-1, 32)
            amax = np.abs(xb).max(axis=1)
            if not np.array_equal(d.astype(np.float16), (amax / np.float32(127)).astype(np.float16)):
                sys.exit(f"FAIL: {name} Q8_0 scales are not f16(amax/127)")
            err = np.abs(xb - q * d[:, None])
            bound = d[:, None] / 2 + 1e-6 * amax[:, None] + 1e-12
            # f16 rounding of d moves q*d by up to 127*|d - amax/127|; allow exactly that on top.
            bound = bound + 127 * np.abs(d - amax / np.float32(127))[:, None]
            if (err > bound).any():
                sys.exit(f"FAIL: {name} Q8_0 error {err.max()} above bound")
            deq = gguf.quants.dequantize(np.asarray(t.data), ty).reshape(x.shape)
            if not np.allclose(deq, (q * d[:, None]).reshape(x.shape)):
                sys.exit(f"FAIL: {name} gguf's own dequantization disagrees")
            detail = f"max |x - q*d| {err.max():.3g}"
        else:
            sys.exit(f"FAIL: {name} has type {ty.name}")
        print(f"{name:28s} {ty.name:5s} {list(x.shape)} {detail}")
    extra = set(tensors) - expected
    if extra:
        sys.exit(f"FAIL: unexpected tensors {sorted(extra)}")
    print(f"OK: {len(expected)} tensors match {hf_dir}")


if __name__ == "__main__":
    main()
