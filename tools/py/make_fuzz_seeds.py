#!/usr/bin/env python3
"""Seed corpus for the GGUF fuzz targets, written by the independent `gguf` package (PyPI).

Small GPT-2-shaped files with every metadata value type, string arrays, and F32 / F16 / Q8_0
tensors, plus truncated and bit-flipped variants; any extra GGUF paths given on the command line
(for example the project's converted models) are copied in with the same variants.

    python3 tools/py/make_fuzz_seeds.py fuzz/corpus/gguf_parse [more.gguf ...]
"""
import pathlib
import random
import sys

import numpy as np
import gguf


def tiny_model(path: pathlib.Path, qtype: gguf.GGMLQuantizationType) -> None:
    n_vocab, n_embd, n_ctx, n_ff = 16, 32, 8, 128
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(1)
    w.add_head_count(1)
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
        if qtype == gguf.GGMLQuantizationType.F32:
            return x
        if qtype == gguf.GGMLQuantizationType.F16:
            return x.astype(np.float16)
        return gguf.quants.quantize(x, qtype)

    def vec(n: int) -> np.ndarray:
        return rng.standard_normal(n).astype(np.float32)

    def add(name: str, data: np.ndarray) -> None:
        raw_dtype = qtype if data.dtype == np.uint8 else None
        w.add_tensor(name, data, raw_dtype=raw_dtype)

    add("token_embd.weight", mat(n_vocab, n_embd))
    add("position_embd.weight", mat(n_ctx, n_embd))
    add("blk.0.attn_norm.weight", vec(n_embd))
    add("blk.0.attn_norm.bias", vec(n_embd))
    add("blk.0.attn_qkv.weight", mat(3 * n_embd, n_embd))
    add("blk.0.attn_qkv.bias", vec(3 * n_embd))
    add("blk.0.attn_output.weight", mat(n_embd, n_embd))
    add("blk.0.attn_output.bias", vec(n_embd))
    add("blk.0.ffn_norm.weight", vec(n_embd))
    add("blk.0.ffn_norm.bias", vec(n_embd))
    add("blk.0.ffn_up.weight", mat(n_ff, n_embd))
    add("blk.0.ffn_up.bias", vec(n_ff))
    add("blk.0.ffn_down.weight", mat(n_embd, n_ff))
    add("blk.0.ffn_down.bias", vec(n_embd))
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


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/gguf_parse")
    out.mkdir(parents=True, exist_ok=True)
    for qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0):
        path = out / f"tiny-{qtype.name.lower()}.tmp"
        tiny_model(path, qtype)
        variants(out, path.stem, path.read_bytes())
        path.unlink()
    for extra in sys.argv[2:]:
        p = pathlib.Path(extra)
        variants(out, p.stem, p.read_bytes())
    print(f"seeds in {out}: {len(list(out.iterdir()))} files")


if __name__ == "__main__":
    main()
