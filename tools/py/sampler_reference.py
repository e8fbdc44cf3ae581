#!/usr/bin/env python3
"""Reference distributions for mote's sampler, computed by Hugging Face transformers' own logits
processors applied in `generate()`'s order.

Writes tests/fixtures/sampler/cases.json: for each case, the raw logits, the token history, the
settings, and what transformers makes of them: the processed scores (greedy settings) or the final
probability distribution softmax(processed scores) (sampling settings).

    python3 tools/py/sampler_reference.py
"""
import json
import pathlib

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/sampler/cases.json"
VOCAB = 96


def processors(cfg):
    """The list `GenerationMixin._get_logits_processor` builds for these settings (batch 1, no beams)."""
    procs = LogitsProcessorList()
    if cfg["repetition_penalty"] != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(penalty=cfg["repetition_penalty"]))
    if cfg["no_repeat_ngram_size"] > 0:
        procs.append(NoRepeatNGramLogitsProcessor(cfg["no_repeat_ngram_size"]))
    if cfg["temperature"] > 0:  # do_sample
        if cfg["temperature"] != 1.0:
            procs.append(TemperatureLogitsWarper(cfg["temperature"]))
        if cfg["top_k"] is not None and cfg["top_k"] != 0:
            procs.append(TopKLogitsWarper(top_k=cfg["top_k"], min_tokens_to_keep=1))
        if cfg["top_p"] < 1.0:
            procs.append(TopPLogitsWarper(top_p=cfg["top_p"], min_tokens_to_keep=1))
    return procs


def main():
    gen = torch.Generator().manual_seed(1234)
    settings = [
        dict(temperature=0.0, top_k=None, top_p=1.0, repetition_penalty=1.3, no_repeat_ngram_size=0),
        dict(temperature=0.0, top_k=None, top_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=2),
        dict(temperature=0.0, top_k=None, top_p=1.0, repetition_penalty=0.7, no_repeat_ngram_size=3),
        dict(temperature=1.0, top_k=None, top_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0),
        dict(temperature=0.7, top_k=None, top_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0),
        dict(temperature=1.0, top_k=10, top_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0),
        dict(temperature=1.0, top_k=None, top_p=0.9, repetition_penalty=1.0, no_repeat_ngram_size=0),
        dict(temperature=1.0, top_k=None, top_p=0.3, repetition_penalty=1.0, no_repeat_ngram_size=0),
        dict(temperature=0.8, top_k=40, top_p=0.95, repetition_penalty=1.2, no_repeat_ngram_size=3),
        dict(temperature=1.5, top_k=5, top_p=0.5, repetition_penalty=1.1, no_repeat_ngram_size=2),
    ]
    cases = []
    for i, cfg in enumerate(settings):
        for rep, scale in enumerate([1.0, 4.0, 0.25]):
            logits = torch.randn(1, VOCAB, generator=gen) * scale
            # Histories drawn from a small alphabet so that n-grams and repeats really occur.
            hist_len = int(torch.randint(4, 40, (1,), generator=gen))
            history = torch.randint(0, 12, (1, hist_len), generator=gen)
            out = processors(cfg)(history, logits.clone())
            case = dict(name=f"s{i}_r{rep}", **cfg, logits=logits[0].tolist(), history=history[0].tolist())
            if cfg["temperature"] > 0:
                case["probs"] = torch.softmax(out, dim=-1)[0].tolist()
            else:
                case["scores"] = [s if s != float("-inf") else None for s in out[0].tolist()]
                case["argmax"] = int(out[0].argmax())
            cases.append(case)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"generator": "tools/py/sampler_reference.py", "vocab": VOCAB, "cases": cases}))
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
