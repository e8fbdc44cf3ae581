#!/usr/bin/env python3
"""Seed corpora for the fuzz targets in fuzz/, written by independent packages (PyPI `gguf`,
`safetensors`).

- gguf_parse: small GPT-2-shaped files with every metadata value type, string arrays, and F32 / F16 /
  Q8_0 tensors, plus truncated and bit-flipped variants; any extra GGUF paths given on the command
  line (for example the project's converted models) are copied in with the same variants.
- model_generate: tiny GPT-2 models of several shapes (heads, layers, context, widths) and types,
  some with NaN and Inf weights, biases and Q8_0 scales, plus bit-flipped variants.
- tokenizer: short texts (English, Unicode, special-token text, invalid UTF-8, long words).
- chat: console sessions (prompts, commands, bad values, line ends, long lines, invalid UTF-8).
- convert_inputs: `config.json`, a NUL byte, then a tiny GPT-2 `model.safetensors`, in F32 / F16 /
  BF16, plus truncated and bit-flipped variants. F32 and F16 files are written by
  `safetensors.numpy`; numpy has no bfloat16, so BF16 files are laid out here by the safetensors
  format's rules (an 8-byte header length, the JSON header, the data).

    python3 tools/py/make_fuzz_seeds.py TARGET fuzz/corpus/TARGET [more.gguf ...]
"""
import json
import pathlib
import random
import sys

import numpy as np
import gguf


def tiny_model(path: pathlib.Path, qtype: gguf.GGMLQuantizationType, n_vocab: int = 16,
               n_embd: int = 32, n_ctx: int = 8, n_ff: int = 128, n_layer: int = 1, n_head: int = 1,
               poison: float | None = None) -> None:
    """A GPT-2 GGUF; `poison` (NaN or Inf) replaces a few weights and biases."""
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_layer_norm_eps(1e-5)
    w.add_file_type(7 if qtype == gguf.GGMLQuantizationType.Q8_0 else 0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(n_vocab - 1)] + ["<|endoftext|>"])
    w.add_token_types([1] * (n_vocab - 1) + [3])
    w.add_token_merges(["t 1", "t1 0"])
    w.add_eos_token_id(n_vocab - 1)
    w.add_bool("mote.flag", True)
    w.add_int8("mote.i8", -3)
    w.add_uint16("mote.u16", 7)
    w.add_int64("mote.i64", -1)
    w.add_float64("mote.f64", 0.5)
    w.add_array("mote.nested", [[1, 2], [3]])
    rng = np.random.default_rng(0)

    def mat(rows: int, cols: int) -> np.ndarray:
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        if poison is not None:
            x[0, 0] = poison
            x[rows - 1, cols - 1] = -poison
        if qtype == gguf.GGMLQuantizationType.F32:
            return x
        if qtype == gguf.GGMLQuantizationType.F16:
            return x.astype(np.float16)
        return gguf.quants.quantize(x, qtype)

    def vec(n: int) -> np.ndarray:
        x = rng.standard_normal(n).astype(np.float32)
        if poison is not None:
            x[n // 2] = poison
        return x

    def add(name: str, data: np.ndarray) -> None:
        raw_dtype = qtype if data.dtype == np.uint8 else None
        w.add_tensor(name, data, raw_dtype=raw_dtype)

    add("token_embd.weight", mat(n_vocab, n_embd))
    add("position_embd.weight", mat(n_ctx, n_embd))
    for i in range(n_layer):
        add(f"blk.{i}.attn_norm.weight", vec(n_embd))
        add(f"blk.{i}.attn_norm.bias", vec(n_embd))
        add(f"blk.{i}.attn_qkv.weight", mat(3 * n_embd, n_embd))
        add(f"blk.{i}.attn_qkv.bias", vec(3 * n_embd))
        add(f"blk.{i}.attn_output.weight", mat(n_embd, n_embd))
        add(f"blk.{i}.attn_output.bias", vec(n_embd))
        add(f"blk.{i}.ffn_norm.weight", vec(n_embd))
        add(f"blk.{i}.ffn_norm.bias", vec(n_embd))
        add(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd))
        add(f"blk.{i}.ffn_up.bias", vec(n_ff))
        add(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff))
        add(f"blk.{i}.ffn_down.bias", vec(n_embd))
    add("output_norm.weight", vec(n_embd))
    add("output_norm.bias", vec(n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def variants(out: pathlib.Path, name: str, blob: bytes) -> None:
    rng = random.Random(name)
    (out / f"{name}.gguf").write_bytes(blob)
    for cut in (24, len(blob) // 3, len(blob) - 1):
        (out / f"{name}.cut{cut}").write_bytes(blob[:cut])
    for k in range(4):
        b = bytearray(blob)
        for _ in range(1 + k):
            i = rng.randrange(min(len(b), 4096))
            b[i] ^= 1 << rng.randrange(8)
        (out / f"{name}.flip{k}").write_bytes(bytes(b))


Q8_0, F16, F32 = (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F16,
                  gguf.GGMLQuantizationType.F32)


def gguf_parse(out: pathlib.Path, extra: list[str]) -> None:
    for qtype in (F32, F16, Q8_0):
        path = out / f"tiny-{qtype.name.lower()}.tmp"
        tiny_model(path, qtype)
        variants(out, path.stem, path.read_bytes())
        path.unlink()
    for e in extra:
        p = pathlib.Path(e)
        variants(out, p.stem, p.read_bytes())


def model_generate(out: pathlib.Path, extra: list[str]) -> None:
    shapes = {
        "base": {},
        "heads4": {"n_head": 4, "n_layer": 2},
        "ctx1": {"n_ctx": 1},
        "narrow-ff": {"n_ff": 32, "n_embd": 64, "n_head": 2},
        "vocab1": {"n_vocab": 1},
    }
    for qtype in (Q8_0, F16, F32):
        for shape, kw in shapes.items():
            for poison in (None, float("nan"), float("inf")):
                name = f"{shape}-{qtype.name.lower()}" + ("" if poison is None else f"-{poison}")
                path = out / f"{name}.tmp"
                tiny_model(path, qtype, poison=poison, **kw)
                blob = path.read_bytes()
                path.unlink()
                (out / name).write_bytes(blob)
                if poison is None and shape == "base":
                    variants(out, name, blob)


def tokenizer(out: pathlib.Path, extra: list[str]) -> None:
    texts = {
        "english": "Once upon a time, there was a little girl named Lily. She's 3 and it's   fun!\n\n",
        "unicode": "héllo wörld 你好 🙂👍🏽 ﬁ Ǆ \u0301 \u200d \ufeff Ελληνικά русский",
        "special": "a<|endoftext|>b <|endoftext|><|endoftext|> <|endoftext",
        "numbers": "1234567890 3.14159 0x1F 1,000,000",
        "spaces": " \t\r\n   \u3000 \u00a0x  y\n\n\n",
        "long-word": "a" * 600 + " " + "é" * 300,
    }
    for name, text in texts.items():
        (out / name).write_bytes(text.encode())
    (out / "invalid-utf8").write_bytes(b"ab\xff\xfe c\xc3 d\xe2\x82 e\xf0\x9f\x99 \x80\x80")
    for e in extra:
        p = pathlib.Path(e)
        (out / p.name).write_bytes(p.read_bytes()[:4096])


def chat(out: pathlib.Path, extra: list[str]) -> None:
    sessions = {
        "prompts": "Once upon a time\nThe dog ran\n",
        "commands": "/temperature 0.8\n/top-k 40\n/top-p 0.9\n/seed 7\nhi\n/greedy\n/settings\n/help\n",
        "bad-values": "/temperature -1\n/top-p 0\n/top-k x\n/max-tokens 0\n/no-repeat-ngram-size 999\n/nope\n",
        "line-ends": "a\r\nb\rc\n\n\r\n",
        "long-line": "x" * 200 + "\nok\n",
        "unicode": "héllo 你好 🙂\n",
    }
    for name, text in sessions.items():
        (out / name).write_bytes(text.encode())
    (out / "invalid-utf8").write_bytes(b"ab\xff\xfe\nc\xc3\n")


def save_bf16(tensors: dict[str, np.ndarray], path: pathlib.Path) -> None:
    """A safetensors file of BF16 tensors: each f32 cut to its upper 16 bits."""
    header, data, offset = {}, [], 0
    for name, x in tensors.items():
        raw = (x.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(x.shape), "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(data))


def convert_inputs(out: pathlib.Path, extra: list[str]) -> None:
    from safetensors.numpy import save_file

    n_vocab, n_embd, n_ctx, n_layer = 16, 32, 8, 1
    config = {"model_type": "gpt2", "n_embd": n_embd, "n_head": 2, "n_layer": n_layer,
              "n_positions": n_ctx, "vocab_size": n_vocab, "layer_norm_epsilon": 1e-5,
              "activation_function": "gelu_new"}
    rng = np.random.default_rng(1)
    e, f = n_embd, 4 * n_embd
    shapes = {"wte.weight": (n_vocab, e), "wpe.weight": (n_ctx, e), "ln_f.weight": (e,), "ln_f.bias": (e,)}
    for i in range(n_layer):
        h = f"h.{i}."
        shapes.update({
            h + "ln_1.weight": (e,), h + "ln_1.bias": (e,), h + "attn.c_attn.weight": (e, 3 * e),
            h + "attn.c_attn.bias": (3 * e,), h + "attn.c_proj.weight": (e, e), h + "attn.c_proj.bias": (e,),
            h + "ln_2.weight": (e,), h + "ln_2.bias": (e,), h + "mlp.c_fc.weight": (e, f),
            h + "mlp.c_fc.bias": (f,), h + "mlp.c_proj.weight": (f, e), h + "mlp.c_proj.bias": (e,),
        })
    for dtype in ("float32", "float16", "bfloat16"):
        tensors = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
        if dtype == "float32":
            tensors["transformer.lm_head.weight"] = tensors["wte.weight"].copy()
        path = out / f"st-{dtype}.tmp"
        if dtype == "bfloat16":
            save_bf16(tensors, path)
        else:
            save_file({k: v.astype(dtype) for k, v in tensors.items()}, str(path))
        blob = json.dumps(config).encode() + b"\0" + path.read_bytes()
        path.unlink()
        variants(out, f"tiny-{dtype}", blob)


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "gguf_parse"
    out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else f"fuzz/corpus/{target}")
    out.mkdir(parents=True, exist_ok=True)
    makers = {"gguf_parse": gguf_parse, "model_generate": model_generate, "tokenizer": tokenizer,
              "convert_inputs": convert_inputs, "chat": chat}
    if target not in makers:
        sys.exit(f"unknown fuzz target {target!r}; one of {', '.join(makers)}")
    makers[target](out, sys.argv[3:])
    print(f"seeds in {out}: {len(list(out.iterdir()))} files")


if __name__ == "__main__":
    main()
