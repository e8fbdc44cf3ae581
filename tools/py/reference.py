#!/usr/bin/env python3
"""Reference outputs for mote's inference tests, from Hugging Face transformers' GPT2LMHeadModel.

For each test model this script
1. writes the model as GGUF with the `gguf` Python package's GGUFWriter (an independent writer, so
   mote's reader and forward pass are tested against files mote did not write): F32, and Q8_0 where
   every row length allows it (quantized with `gguf.quants`, ggml's reference rounding);
2. runs transformers (float32, eager attention) on several prompts and saves the full-vocabulary
   logits at every position, and 64 greedy tokens (argmax, no early stop);
3. for the trained tiny model, evaluates held-out text (non-overlapping windows of the context
   length, teacher forcing) and saves the token ids, the per-position argmax and the perplexity.

Everything goes to tests/fixtures/inference/ (binary little-endian arrays + index.json).

    python3 tools/py/make_test_models.py   # once: trains tests/fixtures/inference/tiny-stories
    python3 tools/py/reference.py
"""
import json
import math
import subprocess
from pathlib import Path

import gguf
import numpy as np
import torch
from transformers import GPT2LMHeadModel

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests/fixtures/inference"
N_GREEDY = 64
# Held-out evaluation text: this many characters.
EVAL_CHARS = 8192

def shared_data() -> Path:
    """`../shared/data` beside the repository; from a git worktree elsewhere, beside the main
    checkout (found through git's common directory)."""
    here = ROOT / "../shared/data"
    if here.is_dir():
        return here
    common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    return (ROOT / common).resolve().parent / "../shared/data"



def gpt2_vocab(encoder_json: Path, merges_txt: Path):
    """Tokens in id order and merges, as GGUF's tokenizer.ggml.* arrays want them."""
    enc = json.loads(encoder_json.read_text(encoding="utf-8"))
    tokens = [None] * len(enc)
    for tok, i in enc.items():
        tokens[i] = tok
    merges = [line for line in merges_txt.read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    return tokens, merges


def write_gguf(path: Path, model: GPT2LMHeadModel, tokens, merges, eos_id: int, quant: bool, name: str):
    cfg = model.config
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quant else gguf.LlamaFileType.ALL_F32)
    w.add_context_length(cfg.n_positions)
    w.add_embedding_length(cfg.n_embd)
    w.add_feed_forward_length(cfg.n_inner or 4 * cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_head_count(cfg.n_head)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    if merges:  # a complete tokenizer; without merges only the vocabulary, to keep the file small
        w.add_token_types([gguf.TokenType.CONTROL if t == "<|endoftext|>" else gguf.TokenType.NORMAL
                           for t in tokens])
        w.add_token_merges(merges)
    w.add_bos_token_id(eos_id)
    w.add_eos_token_id(eos_id)

    sd = {k.removeprefix("transformer."): v.detach().float().numpy() for k, v in model.state_dict().items()}

    def put(gname: str, arr: np.ndarray, conv1d: bool = False):
        arr = np.ascontiguousarray(arr.T if conv1d else arr, dtype=np.float32)
        if quant and arr.ndim == 2 and arr.shape[1] % 32 == 0:
            q = gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gname, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(gname, arr)

    put("token_embd.weight", sd["wte.weight"])
    put("position_embd.weight", sd["wpe.weight"])
    # Per block, in file order: GGUF's name, transformers' name, and whether the weight is a
    # Conv1D (stored transposed); each has a weight and a bias.
    block = [("attn_norm", "ln_1", False), ("attn_qkv", "attn.c_attn", True),
             ("attn_output", "attn.c_proj", True), ("ffn_norm", "ln_2", False),
             ("ffn_up", "mlp.c_fc", True), ("ffn_down", "mlp.c_proj", True)]
    for i in range(cfg.n_layer):
        for gname, hname, conv1d in block:
            put(f"blk.{i}.{gname}.weight", sd[f"h.{i}.{hname}.weight"], conv1d=conv1d)
            put(f"blk.{i}.{gname}.bias", sd[f"h.{i}.{hname}.bias"])
    put("output_norm.weight", sd["ln_f.weight"])
    put("output_norm.bias", sd["ln_f.bias"])
    # lm_head is tied to wte in GPT-2: no output.weight, as llama.cpp's converter does.
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@torch.no_grad()
def logits_of(model, ids):
    return model(torch.tensor([ids])).logits[0].float().numpy()


@torch.no_grad()
def greedy(model, ids, n):
    ids = list(ids)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(logits_of(model, ids)[-1]))
        out.append(nxt)
        ids.append(nxt)
    return out


def save_f32(path: Path, arr: np.ndarray):
    path.write_bytes(np.ascontiguousarray(arr, dtype="<f4").tobytes())


def save_u32(path: Path, arr):
    path.write_bytes(np.asarray(arr, dtype="<u4").tobytes())


def top2_margin(logits: np.ndarray) -> float:
    s = np.sort(logits, axis=-1)
    return float((s[..., -1] - s[..., -2]).min())


def reference_prompts(model, out_dir: Path, prompts, n_full: int):
    """Logits at every prompt position; for the first n_full prompts at every position of the prompt
    and the first 63 greedy tokens too (more positions, kept few to keep the fixtures small)."""
    entries = []
    for i, (text, ids) in enumerate(prompts):
        gen = greedy(model, ids, N_GREEDY)
        seq = ids + gen[:-1] if i < n_full else ids
        logits = logits_of(model, seq)
        fname = f"logits-{i}.f32"
        save_f32(out_dir / fname, logits)
        entries.append({
            "text": text, "prompt": ids, "greedy": gen, "positions": seq,
            "logits": fname, "shape": list(logits.shape),
            "min_top2_margin": top2_margin(logits),
        })
    return entries


@torch.no_grad()
def evaluate(model, ids, n_ctx):
    """Mean NLL over non-overlapping windows of n_ctx tokens; in each window, tokens 1.. are predicted
    from the ones before them (the first token of a window is context only)."""
    nll, count, top1 = 0.0, 0, []
    for start in range(0, len(ids), n_ctx):
        window = ids[start:start + n_ctx]
        if len(window) < 2:
            break
        logits = torch.tensor(logits_of(model, window), dtype=torch.float64)
        logp = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(window[1:])
        nll -= float(logp[:-1].gather(1, tgt[:, None]).sum())
        count += len(window) - 1
        top1.extend(int(t) for t in logits[:-1].argmax(dim=-1))
    return nll / count, count, top1


def q8_0_weights_model(model):
    """A copy of `model` whose matrices hold their Q8_0 round trip (gguf.quants, ggml's rounding):
    float inference of exactly the weights in the Q8_0 GGUF, to tell weight rounding apart from
    the rest of mote's integer arithmetic."""
    import copy
    q = copy.deepcopy(model)
    t = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for name, p in q.named_parameters():
            if p.ndim != 2:
                continue
            a = p.detach().numpy().astype(np.float32)
            conv1d = any(k in name for k in ("c_attn", "c_proj", "c_fc"))
            a = a.T.copy() if conv1d else a
            a = gguf.quants.dequantize(gguf.quants.quantize(a, t), t)
            p.copy_(torch.tensor(np.ascontiguousarray(a.T if conv1d else a)))
    return q


def reference_tiny():
    """The trained tiny model: GGUF files, prompt logits and greedy tokens, held-out evaluation."""
    from tokenizers import Tokenizer
    name = "tiny-stories"
    tiny_dir = FIX / name
    tok = Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    model = GPT2LMHeadModel.from_pretrained(tiny_dir, attn_implementation="eager").eval()
    tokens, merges = gpt2_vocab(tiny_dir / "vocab.json", tiny_dir / "merges.txt")
    eos = tokens.index("<|endoftext|>")
    for quant in (False, True):
        write_gguf(tiny_dir / f"model-{'q8_0' if quant else 'f32'}.gguf", model, tokens, merges, eos,
                   quant, name)
    prompt_texts = [
        "Once upon a time, there was a little girl named Lily. She",
        "Tom and his mom went to the park. Tom saw a big dog and",
        "The sun was",
        "One",
    ]
    prompts = [(t, tok.encode(t).ids) for t in prompt_texts]
    # Held-out text: the start of the TinyStories validation head, never seen in training.
    eval_file = "tinystories/tinystories_validation_head.txt"
    text = (shared_data() / eval_file).read_text(encoding="utf-8")
    held_out = text[:EVAL_CHARS]
    eval_ids = tok.encode(held_out).ids
    mean_nll, count, top1 = evaluate(model, eval_ids, model.config.n_positions)
    save_u32(tiny_dir / "eval-tokens.u32", eval_ids)
    save_u32(tiny_dir / "eval-top1.u32", top1)
    _, _, top1_q8w = evaluate(q8_0_weights_model(model), eval_ids, model.config.n_positions)
    save_u32(tiny_dir / "eval-top1-q8_0-weights.u32", top1_q8w)
    q8w_agree = sum(a == b for a, b in zip(top1, top1_q8w)) / len(top1)
    return {
        "name": name,
        "hf_dir": name,
        "gguf": {"f32": f"{name}/model-f32.gguf", "q8_0": f"{name}/model-q8_0.gguf"},
        "n_vocab": model.config.vocab_size, "n_ctx": model.config.n_positions, "eos": eos,
        "prompts": reference_prompts(model, tiny_dir, prompts, n_full=1),
        "eval": {
            # The text is not copied into the repository: it is this slice of the shared file
            # (in characters).
            "text": eval_file, "char_offset": 0, "n_chars": len(held_out),
            "tokens": f"{name}/eval-tokens.u32", "top1": f"{name}/eval-top1.u32",
            # transformers' top-1 with the Q8_0 round trip of the weights (float activations).
            "top1_q8_0_weights": f"{name}/eval-top1-q8_0-weights.u32",
            "q8_0_weights_top1_agreement": q8w_agree,
            "n_tokens": len(eval_ids), "n_predicted": count,
            "mean_nll": mean_nll, "perplexity": math.exp(mean_nll),
        },
    }


def main():
    torch.set_num_threads(1)
    index = {"n_greedy": N_GREEDY, "models": []}

    # 1. The trained tiny model (tools/py/make_test_models.py).
    index["models"].append(reference_tiny())

    # 2. A checkpoint written by other software: 1 layer, width 2, the real 50,257-token vocabulary.
    fake_dir = FIX / "fake-gpt2"
    fake_dir.mkdir(parents=True, exist_ok=True)
    model = GPT2LMHeadModel.from_pretrained(shared_data() / "hf-lmbuddy-fake-gpt2", attn_implementation="eager").eval()
    tokens, merges = gpt2_vocab(shared_data() / "gpt2-tokenizer/encoder.json", shared_data() / "gpt2-tokenizer/vocab.bpe")
    # No merges: they are 1.4 MB, and inference needs only the vocabulary (the tokenizer is tested
    # on the shared GPT-2 tokenizer files directly).
    write_gguf(fake_dir / "model-f32.gguf", model, tokens, [], 50256, False, "hf-lmbuddy-fake-gpt2")
    # "The quick brown", as GPT-2's tokenizer encodes it (each position's logits are 200 kB here).
    prompts = [("The quick brown", [464, 2068, 7586])]
    index["models"].append({
        "name": "fake-gpt2",
        "hf_dir": "../shared/data/hf-lmbuddy-fake-gpt2",
        "gguf": {"f32": "fake-gpt2/model-f32.gguf"},
        "n_vocab": model.config.vocab_size, "n_ctx": model.config.n_positions, "eos": 50256,
        "prompts": reference_prompts(model, fake_dir, prompts, n_full=0),
    })

    (FIX / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    for m in index["models"]:
        print(m["name"], [(p["shape"], round(p["min_top2_margin"], 6)) for p in m["prompts"]])
        if "eval" in m:
            print("  eval", {k: m["eval"][k] for k in ("n_tokens", "n_predicted", "perplexity",
                                                       "q8_0_weights_top1_agreement")})


if __name__ == "__main__":
    main()
