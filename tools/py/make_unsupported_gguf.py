#!/usr/bin/env python3
"""Writes a small GPT-2 GGUF whose matrices are of a type mote cannot run (Q4_0 by default), with
the independent PyPI `gguf` package, for the tests of `mote inspect` (which must show it) and of
`generate`, `eval` and `bench` (which must refuse it with advice).

    python tools/py/make_unsupported_gguf.py OUT.gguf [--type Q4_0]
"""
import argparse
import pathlib

import gguf

from make_fuzz_seeds import tiny_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--type", default="Q4_0", help="a ggml type gguf-py can quantize to (Q4_0, Q5_1, BF16, ...)")
    a = ap.parse_args()
    tiny_model(a.out, gguf.GGMLQuantizationType[a.type])
    print(f"wrote {a.out} ({a.type} matrices)")


if __name__ == "__main__":
    main()
