#!/usr/bin/env python3
"""Converts one Hugging Face GPT-2 directory with `mote convert` and with llama.cpp's
`convert_hf_to_gguf.py`, both to Q8_0, and checks that every tensor has the same type and shape and
that every Q8_0 (and F32) tensor is byte-identical. Also lists metadata keys that differ.

    python3 tools/py/compare_llama_cpp_convert.py HF_DIR --llama-cpp /tmp/llama/llama_cpp_python-0.3.36/vendor/llama.cpp
        [--mote target/release/mote] [--work /tmp/mote-vs-llama]

HF_DIR must use a tokenizer llama.cpp recognises (the real GPT-2 one: make it with
tools/py/make_random_gpt2.py). Needs torch and transformers (llama.cpp's converter imports them).
Exits non-zero if any tensor differs.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir", type=Path)
    ap.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree (0c1e570)")
    ap.add_argument("--mote", default="target/release/mote")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mote-vs-llama"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    ours, theirs = a.work / "mote.gguf", a.work / "llama.gguf"
    subprocess.run([a.mote, "convert", a.hf_dir, "-o", ours, "--type", "q8_0", "--force"], check=True)
    env = dict(os.environ, PYTHONPATH=str(a.llama_cpp / "gguf-py"))
    subprocess.run([sys.executable, a.llama_cpp / "convert_hf_to_gguf.py", a.hf_dir, "--outtype", "q8_0",
                    "--outfile", theirs], check=True, env=env)

    sys.path.insert(0, str(a.llama_cpp / "gguf-py"))
    import gguf  # llama.cpp's own copy, as its converter used

    r_m, r_l = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
    tm = {t.name: t for t in r_m.tensors}
    tl = {t.name: t for t in r_l.tensors}
    bad = 0
    if set(tm) != set(tl):
        print(f"tensor sets differ: only mote {sorted(set(tm) - set(tl))}, only llama.cpp {sorted(set(tl) - set(tm))}")
        bad += 1
    n_q8 = 0
    for name in sorted(set(tm) & set(tl)):
        a_, b_ = tm[name], tl[name]
        same_type = a_.tensor_type == b_.tensor_type and list(a_.shape) == list(b_.shape)
        same_bytes = np.asarray(a_.data).tobytes() == np.asarray(b_.data).tobytes()
        n_q8 += a_.tensor_type == gguf.GGMLQuantizationType.Q8_0
        status = "identical" if same_type and same_bytes else "DIFFERENT"
        bad += status != "identical"
        print(f"{name:28s} {a_.tensor_type.name:5s} vs {b_.tensor_type.name:5s} {[int(d) for d in a_.shape]} {status}")
    km = {k: f.contents() for k, f in r_m.fields.items() if not k.startswith("GGUF.")}
    kl = {k: f.contents() for k, f in r_l.fields.items() if not k.startswith("GGUF.")}
    for k in sorted(set(km) | set(kl)):
        if k not in km:
            print(f"metadata only in llama.cpp: {k} = {str(kl[k])[:80]}")
        elif k not in kl:
            print(f"metadata only in mote:      {k} = {str(km[k])[:80]}")
        elif km[k] != kl[k]:
            print(f"metadata differs: {k}: mote {str(km[k])[:60]} / llama.cpp {str(kl[k])[:60]}")
    print(f"{len(tm)} tensors ({n_q8} Q8_0): {'all identical' if bad == 0 else f'{bad} DIFFERENT'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
