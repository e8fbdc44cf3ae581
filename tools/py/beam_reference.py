#!/usr/bin/env python3
"""Reference beam searches for mote's `beam` module, from Hugging Face transformers' own
`generate(num_beams=...)` on two trained models.

Writes tests/fixtures/beam/cases.json: for each model and case, the prompt ids, the settings and
every returned hypothesis (its new token ids and its `sequences_scores` value). The Rust test
`tests/tests/beam.rs` runs the same searches on F32 GGUF files of the same models and requires the
same ids and scores within 1e-4.

Models: the bundled models/tinystories-base (vocabulary 2048, width 128) and the trained test model
tests/fixtures/inference/tiny-stories (vocabulary 512, width 64), both float32, eager attention,
one thread.

The end-of-text token: neither model produces its own (id 0) within these budgets (they start a new
story instead), so the cases that need a reachable end of text name the full stop "." (id 14 in
both vocabularies) as `eos_token_id`; the others keep id 0, which is not reached. Each case records
whether a returned hypothesis ends with its end-of-text token.

    python3 tools/py/beam_reference.py   # then commit tests/fixtures/beam
"""
import itertools
import json
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fixtures/beam/cases.json"
MODELS = [
    ("tinystories-base", "models/tinystories-base"),
    ("tiny-stories", "tests/fixtures/inference/tiny-stories"),
]
PROMPTS = [
    "Once upon a time, there was a little girl named Lily. She",
    "They played together all day and had lots of fun. They were best friends forever. The end",
]
MAX_NEW = 20
FULL_STOP = 14  # "." in both vocabularies
NO_EOS = 0  # the models' own end of text, not reached within MAX_NEW


def search(model, prompt, *, num_beams, length_penalty, early_stopping, no_repeat_ngram_size=0,
           repetition_penalty=1.0, min_new_tokens=0, eos=NO_EOS, num_return_sequences=None,
           max_new_tokens=MAX_NEW):
    k = num_return_sequences or num_beams
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        num_beams=num_beams,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        no_repeat_ngram_size=no_repeat_ngram_size,
        repetition_penalty=repetition_penalty,
        min_new_tokens=min_new_tokens,
        eos_token_id=eos,
        pad_token_id=eos,
        num_return_sequences=k,
        max_new_tokens=max_new_tokens,
        return_dict_in_generate=True,
        output_scores=True,
    )
    p = len(prompt)
    seqs = []
    for i in range(k):
        n_new = int((out.beam_indices[i] != -1).sum())
        seqs.append({
            "tokens": out.sequences[i, p:p + n_new].tolist(),
            "score": float(out.sequences_scores[i]),
        })
    es = {True: "true", False: "false", "never": "never"}[early_stopping]
    return {
        "prompt": prompt,
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        "early_stopping": es,
        "no_repeat_ngram_size": no_repeat_ngram_size,
        "repetition_penalty": repetition_penalty,
        "min_new_tokens": min_new_tokens,
        "eos": eos,
        "max_new_tokens": max_new_tokens,
        "num_return_sequences": k,
        "eos_reached": any(s["tokens"][-1:] == [eos] for s in seqs),
        "sequences": seqs,
    }


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    models = []
    for name, path in MODELS:
        model = GPT2LMHeadModel.from_pretrained(ROOT / path, attn_implementation="eager").eval()
        tok = AutoTokenizer.from_pretrained(ROOT / path)
        prompts = [tok(t).input_ids for t in PROMPTS]
        cases = []
        grid = itertools.product([2, 3, 5], [0.5, 1.0, 2.0], [True, False, "never"], [0, 2],
                                 [NO_EOS, FULL_STOP])
        with torch.no_grad():
            for nb, lp, es, ngram, eos in grid:
                cases.append(search(model, prompts[0], num_beams=nb, length_penalty=lp,
                                    early_stopping=es, no_repeat_ngram_size=ngram, eos=eos))
            # The other controls, fewer returned sequences, and the second prompt.
            cases.append(search(model, prompts[0], num_beams=4, length_penalty=1.0,
                                early_stopping=False, repetition_penalty=1.3))
            cases.append(search(model, prompts[0], num_beams=4, length_penalty=1.0,
                                early_stopping=True, repetition_penalty=0.8, eos=FULL_STOP))
            for m in [3, 8]:
                cases.append(search(model, prompts[0], num_beams=3, length_penalty=1.0,
                                    early_stopping=False, min_new_tokens=m, eos=FULL_STOP))
            cases.append(search(model, prompts[0], num_beams=5, length_penalty=1.0,
                                early_stopping="never", num_return_sequences=2))
            for es in [True, False, "never"]:
                cases.append(search(model, prompts[1], num_beams=4, length_penalty=1.0,
                                    early_stopping=es, no_repeat_ngram_size=3, eos=FULL_STOP,
                                    max_new_tokens=32))
        models.append({"name": name, "hf_dir": path, "cases": cases})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generator": "tools/py/beam_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "models": models,
    }
    OUT.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    n = sum(len(m["cases"]) for m in models)
    reached = sum(c["eos_reached"] for m in models for c in m["cases"])
    print(f"wrote {OUT.relative_to(ROOT)}: {n} cases, {reached} with end of text reached")


if __name__ == "__main__":
    main()
