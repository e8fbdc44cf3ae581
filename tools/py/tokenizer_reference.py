#!/usr/bin/env python3
"""Reference token ids from Hugging Face `tokenizers` for mote's tokenizer tests.

mote's tokenizer must give exactly the ids of Hugging Face's GPT-2 tokenizer. This script builds that
tokenizer from OpenAI's files in ../shared/data/gpt2-tokenizer (BPE model, ByteLevel pre-tokenizer
without a prefix space, ByteLevel decoder: what `GPT2TokenizerFast` is) and writes, into
tests/fixtures/tokenizer/:

- gpt2_hard.json: full ids of a list of hard strings (contractions, whitespace runs, scripts, emoji,
  combining marks, ...), each with and without `<|endoftext|>` recognised as a special token.
- gpt2_corpus.json: for every line of ../shared/data/tinystories/*.txt and tinyshakespeare/input.txt
  (split on "\n", the newline not included), the per-file line and id counts, one FNV-1a 64 hash per
  block of CHUNK lines, and the full ids of every SAMPLE_EVERY-th line so that a mismatch can be
  diagnosed.
- gpt2_unicode_sweep.json: one hash per block of SWEEP_BLOCK code points covering all of Unicode (surrogates
  excluded), each block written as "a<c> <c>1<c>x <c><c>" for every code point c, so that every
  character's class (letter, number, whitespace, other) is checked against Oniguruma's.

Hash of a block of lines: FNV-1a 64 over, for each line, each id as 4 little-endian bytes followed by
the separator ff ff ff ff. The Rust tests compute the same.

The same hard-string and corpus files for one of the project's own tokenizers (its Hugging Face
tokenizer.json, as train.py saved it beside the checkpoint), named by --name:

       python3 tools/py/tokenizer_reference.py --tokenizer-json models/tinystories-base/tokenizer.json \
           --name tinystories_base      (writes tinystories_base_hard.json and tinystories_base_corpus.json)

Usage: python3 tools/py/tokenizer_reference.py [--data ../shared/data] [--out tests/fixtures/tokenizer]
       python3 tools/py/tokenizer_reference.py --show "some text"   (prints ids and tokens)
       python3 tools/py/tokenizer_reference.py --bench FILE         (encode throughput, one thread)
       python3 tools/py/tokenizer_reference.py --gguf OUT.gguf [--index]
           (GPT-2's tokenizer as a metadata-only GGUF written by the `gguf` package, as llama.cpp's
           converter lays it out; --index adds the mote.tokenizer.* arrays, computed here
           independently of mote, which checks them on load)
"""

import argparse
import json
import os
import time
from pathlib import Path

CHUNK = 64
SWEEP_BLOCK = 4096
SAMPLE_EVERY = 500
SPECIAL = "<|endoftext|>"
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1

HARD_STRINGS = [
    "",
    " ",
    "  ",
    "Hello world",
    "Hello, world! How's it going?",
    # contractions at word edges, in upper case, doubled, alone
    "'s 't 're 've 'm 'll 'd",
    "it's isn't they're we've I'm you'll he'd",
    "IT'S ISN'T THEY'RE",
    "'s's'll'd'",
    "don''t ''s 's'",
    "rock'n'roll o'clock y'all",
    "’s curly apostrophe’s",
    # whitespace runs
    "a  b   c    d",
    "word   ",
    "   leading",
    "\n",
    "\n\n\n",
    "line one\nline two\n\nline four\n",
    "a \n b",
    " \n \n ",
    "tab\there\t\tand\t\t\tthere",
    "\t leading tab space",
    "mixed \t\n\r\n whitespace \u00a0nbsp\u3000ideographic\u2028ls\u2029ps\u0085nel",
    "\r\n\r\n",
    "\x0b\x0c\x1c\x1d\x1e\x1f unit separators",
    # digits mixed with letters
    "123 4567 89012 3.14159 1,000,000",
    "abc123def 1st 2nd 3rd 4th 2024-01-01T12:00:00Z",
    "0x1F600 v1.2.3 ³ ½ Ⅻ ٣٤ ५",
    # punctuation runs
    "!!!??? ... --- *** ===",
    "hello!!!   ...world???",
    "(a) [b] {c} <d> \"e\" `f` ~g~ @h #i $j %k ^l &m *n _o_ +p =q |r \\s /t",
    "--->>>  <<<---",
    "http://example.com/path?q=1&r=2#frag",
    "email@example.com",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "two <|endoftext|><|endoftext|> in a row",
    "<|endoftext|",
    "<|endoftext|>\n<|endoftext|> x",
    # accented Latin, Greek, Cyrillic
    "café naïve résumé Ångström Zürich façade",
    "Ελληνικά: Καλημέρα κόσμε",
    "Русский: Съешь же ещё этих мягких французских булок",
    "Українська: ґ є і ї",
    # CJK
    "日本語のテキスト、カタカナとひらがな。",
    "中文：你好，世界！",
    "한국어 텍스트",
    # emoji with modifiers, ZWJ, flags
    "😀 😃 👍🏽 👋🏿",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag 🇫🇷 🇯🇵",
    "❤️ ✔️ ©️",
    # combining marks and zero-width characters
    "e\u0301 a\u0308 n\u0303 combining",
    "Z\u0351\u0352\u0353algo",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "\u0915\u094d\u0937 Devanagari",
    "עברית العربية",
    # the lossy mapping of invalid UTF-8 (U+FFFD replacement characters)
    "bad \ufffd byte \ufffd\ufffd",
    # other odd characters
    "\x00\x01\x02 control \x7f",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
    "ﬁ ﬂ ligatures",
    "a" * 300,
    " " * 100 + "x",
    "\n" * 50,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


def fnv1a(h, data):
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK
    return h


def hash_lines(id_lists):
    h = FNV_OFFSET
    for ids in id_lists:
        for i in ids:
            h = fnv1a(h, i.to_bytes(4, "little"))
        h = fnv1a(h, b"\xff\xff\xff\xff")
    return h


def gpt2_tokenizer(data):
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    d = data / "gpt2-tokenizer"
    tok = Tokenizer(BPE.from_file(str(d / "encoder.json"), str(d / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = Tokenizer.from_str(tok.to_str())
    special.add_special_tokens([SPECIAL])
    return tok, special


def json_tokenizer(path):
    """A tokenizer.json as Hugging Face loads it (its special tokens recognised), and the same without
    its added tokens (special tokens are plain text)."""
    from tokenizers import Tokenizer

    special = Tokenizer.from_file(str(path))
    spec = json.loads(path.read_text())
    spec["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(spec)), special


def corpus_files(data):
    files = sorted((data / "tinystories").glob("*.txt"))
    files.append(data / "tinyshakespeare" / "input.txt")
    return files


def lines_of(path):
    return path.read_bytes().decode("utf-8").split("\n")


def write_json(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=True, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def split_merge(m):
    """A merge's (left, right) bytes: split at the first space after the first byte."""
    b = m.encode("utf-8")
    at = b.index(b" ", 1)
    return b[:at], b[at + 1:]


def record_offsets(strings):
    offsets, at = [], 0
    for s in strings:
        offsets.append(at)
        at += 8 + len(s.encode("utf-8"))
    return offsets


def write_gguf(data, out, with_index):
    import gguf

    d = data / "gpt2-tokenizer"
    encoder = json.loads((d / "encoder.json").read_text(encoding="utf-8"))
    tokens = [None] * len(encoder)
    for t, i in encoder.items():
        tokens[i] = t
    merges = [l for l in (d / "vocab.bpe").read_text(encoding="utf-8").split("\n")
              if l and not l.startswith("#version")]
    w = gguf.GGUFWriter(str(out), arch="gpt2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t == SPECIAL else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(encoder[SPECIAL])
    w.add_eos_token_id(encoder[SPECIAL])
    if with_index:
        u32 = gguf.GGUFValueType.UINT32
        arrays = [
            ("mote.tokenizer.token_offsets", record_offsets(tokens)),
            ("mote.tokenizer.token_order",
             sorted(range(len(tokens)), key=lambda i: (tokens[i].encode("utf-8"), i))),
        ]
        lowest = {}
        for i, t in enumerate(tokens):
            lowest.setdefault(t, i)
        rows = []
        for rank, m in enumerate(merges):
            left, right = split_merge(m)
            l, r = left.decode("utf-8"), right.decode("utf-8")
            rows.append((lowest[l], lowest[r], rank, lowest[l + r]))
        arrays.append(("mote.tokenizer.merge_pairs", [x for row in sorted(rows) for x in row]))
        for key, values in arrays:
            w.add_key_value(key, values, gguf.GGUFValueType.ARRAY, sub_type=u32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}")


def main():
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=root / ".." / "shared" / "data")
    ap.add_argument("--out", type=Path, default=root / "tests" / "fixtures" / "tokenizer")
    ap.add_argument("--show", help="print the ids and tokens of one string and exit")
    ap.add_argument("--bench", type=Path, help="time encoding FILE line by line and exit")
    ap.add_argument("--gguf", type=Path, help="write GPT-2's tokenizer as a GGUF and exit")
    ap.add_argument("--index", action="store_true", help="with --gguf: add the mote.tokenizer.* index")
    ap.add_argument("--tokenizer-json", type=Path,
                    help="reference a project tokenizer (tokenizer.json) instead of GPT-2's")
    ap.add_argument("--name", default="gpt2", help="fixture file prefix (with --tokenizer-json)")
    args = ap.parse_args()
    if args.gguf is not None:
        write_gguf(args.data, args.gguf, args.index)
        return
    if args.tokenizer_json is not None:
        tok, special = json_tokenizer(args.tokenizer_json)
        described = f"Hugging Face tokenizers Tokenizer.from_file({args.tokenizer_json.name})"
    else:
        tok, special = gpt2_tokenizer(args.data)
        described = "Hugging Face tokenizers BPE(encoder.json, vocab.bpe) + ByteLevel(add_prefix_space=False)"
    name = args.name

    if args.show is not None:
        enc = tok.encode(args.show)
        print(json.dumps({"ids": enc.ids, "tokens": enc.tokens}, ensure_ascii=False))
        return
    if args.bench is not None:
        # One thread (TOKENIZERS_PARALLELISM=false, no encode_batch), best of 3, the whole file as
        # one string (what `mote tokenize --file F --stats` does) and line by line.
        text = args.bench.read_bytes().decode("utf-8")
        mb = len(text.encode("utf-8")) / 1e6
        for mode, run in [
            ("whole file", lambda: len(tok.encode(text).ids)),
            ("line by line", lambda: sum(len(tok.encode(line).ids) for line in text.split("\n"))),
        ]:
            best = None
            for _ in range(3):
                t0 = time.perf_counter()
                n = run()
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            print(f"{args.bench.name} ({mode}): {mb:.3f} MB, {n} ids, best of 3: {best:.3f} s, "
                  f"{mb / best:.2f} MB/s")
        return

    args.out.mkdir(parents=True, exist_ok=True)

    hard = []
    for s in HARD_STRINGS:
        hard.append({
            "text": s,
            "ids": tok.encode(s).ids,
            "ids_special": special.encode(s).ids,
        })
    write_json(args.out / f"{name}_hard.json", {
        "tokenizer": described,
        "special": SPECIAL,
        "cases": hard,
    })

    files = []
    for path in corpus_files(args.data):
        lines = lines_of(path)
        ids = [tok.encode(line).ids for line in lines]
        files.append({
            "path": str(path.relative_to(args.data)),
            "lines": len(lines),
            "ids": sum(len(x) for x in ids),
            "chunk": CHUNK,
            "chunk_hashes": [f"{hash_lines(ids[i:i + CHUNK]):016x}" for i in range(0, len(ids), CHUNK)],
            "samples": [{"line": i, "ids": ids[i]} for i in range(0, len(ids), SAMPLE_EVERY)],
        })
        print(f"{path}: {len(lines)} lines")
    write_json(args.out / f"{name}_corpus.json", {"files": files})
    if args.tokenizer_json is not None:
        return  # the Unicode sweep checks the pre-tokenizer, which is the same for every vocabulary

    blocks = []
    for start in range(0, 0x110000, SWEEP_BLOCK):
        chars = [chr(c) for c in range(start, start + SWEEP_BLOCK) if not 0xD800 <= c < 0xE000]
        if not chars:
            continue
        text = "".join(f"a{c} {c}1{c}x {c}{c}" for c in chars)
        blocks.append({"start": start, "hash": f"{hash_lines([tok.encode(text).ids]):016x}"})
    write_json(args.out / "gpt2_unicode_sweep.json", {"block": SWEEP_BLOCK, "blocks": blocks})


if __name__ == "__main__":
    main()
