#!/usr/bin/env python3
"""Generates tests/fixtures/convert/{llama,qwen2,gpt2}.gguf: the tiny fixture
models of tests/fixtures/models/ written as GGUF files the way llama.cpp's
convert_hf_to_gguf.py writes them, for tk-convert to import.

Run from anywhere (deterministic; needs torch, safetensors, numpy and the
gguf package 0.19.0):
    /tmp/refvenv/bin/python tests/parity/gen-convert-fixtures.py [OUTDIR]

llama.gguf  from models/llama (BF16): general.architecture llama, the
            llama.* hyperparameters, tensor names token_embd, blk.N.attn_q
            ..., output_norm, output; attn_q/attn_k rows permuted as the
            converter's LlamaModel.permute does (reshape(n_head, 2,
            rows/n_head/2, in).swapaxes(1, 2)), k with the KV head count;
            2-D weights BF16 (exact: --outtype bf16), norms F32.
qwen2.gguf  from models/qwen2 (F16, made by transformers' Qwen2ForCausalLM in
            gen-model-fixtures.py): general.architecture qwen2 as the
            converter's Qwen2Model writes it: no q/k permutation, q/k/v
            biases (F32), no output.weight (tied embeddings); 2-D weights
            F16 (exact); the vocabulary with tokenizer.ggml.pre qwen2,
            <|endoftext|> (96) as bos, eos and padding id,
            add_bos_token false and a ChatML tokenizer.chat_template, as
            Qwen2 GGUF files carry them.
gpt2.gguf   from models/gpt2 (F16): general.architecture gpt2, Conv1D
            weights transposed to [out, in] as GPT2Model.modify_tensors
            does, position_embd, LayerNorm weights and biases; 2-D weights
            F16 (exact), the rest F32; output.weight a copy of token_embd,
            as older converters wrote for tied GPT-2 models.

All three carry a 97-token byte-level BPE vocabulary (tokenizer.ggml.model
gpt2, pre gpt-2; qwen2 for qwen2.gguf) matching the fixture models' vocab_size: bytes 0x20..0x79
as GPT-2's byte characters, merges (four for llama, six for qwen2 and gpt2) and the special tokens
at the ids the fixture configs name (llama: <unk> 0, <s> 1, </s> 2; gpt2:
<|endoftext|> 96; qwen2: <|endoftext|> 96, see above).

mamba.gguf      an architecture tk-convert does not handle.
bad-shape.gguf  llama hyperparameters (embedding_length 64) that do not fit
                its token_embd.weight (dims 48, 3).

tests/unit/test-convert.c converts them and checks the
logits against the original fixture models.
"""
import os
import sys

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
MERGES = [("t", "h"), ("th", "e"), ("\u0120", "t"), ("i", "n"), ("e", "r"), ("a", "n")]


# a ChatML template as Qwen2 files carry (tokenizer.chat_template)
CHAT = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def vocab(w, specials_front, specials_back, pre="gpt-2"):
    chars = byte_chars()[0x20:0x7a]
    merges = MERGES[:97 - len(chars) - len(specials_front) - len(specials_back)]
    toks = specials_front + chars + [a + b for a, b in merges] + specials_back
    assert len(toks) == 97, len(toks)
    types = [3] * len(specials_front) + [1] * (len(toks) - len(specials_front) -
                                               len(specials_back)) + [3] * len(specials_back)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges([a + " " + b for a, b in merges])
    return toks


def np32(t):
    return t.to(torch.float32).numpy()


def add(w, name, t, qtype):
    a = np32(t)
    if qtype == T.F32 or a.ndim == 1:
        w.add_tensor(name, a)
    else:
        w.add_tensor(name, quantize(a, qtype), raw_dtype=qtype)


def permute(wt, n_head):
    return wt.reshape(n_head, 2, wt.shape[0] // n_head // 2, *wt.shape[1:]) \
        .swapaxes(1, 2).reshape(wt.shape)


def llama(out):
    import json
    cfg = json.load(open(os.path.join(MODELS, "llama", "config.json")))
    sd = load_file(os.path.join(MODELS, "llama", "model.safetensors"))
    w = gguf.GGUFWriter(os.path.join(out, "llama.gguf"), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    vocab(w, ["<unk>", "<s>", "</s>"], [])
    w.add_unk_token_id(0)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    add(w, "token_embd.weight", sd["model.embed_tokens.weight"], T.BF16)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(w, f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"], T.F32)
        add(w, f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], nh), T.BF16)
        add(w, f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], nkv), T.BF16)
        add(w, f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"], T.BF16)
        add(w, f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"], T.BF16)
        add(w, f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"], T.F32)
        add(w, f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"], T.BF16)
        add(w, f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"], T.BF16)
        add(w, f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"], T.BF16)
    add(w, "output_norm.weight", sd["model.norm.weight"], T.F32)
    add(w, "output.weight", sd["lm_head.weight"], T.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def qwen2(out):
    import json
    cfg = json.load(open(os.path.join(MODELS, "qwen2", "config.json")))
    sd = load_file(os.path.join(MODELS, "qwen2", "model.safetensors"))
    assert cfg["tie_word_embeddings"] and "lm_head.weight" not in sd
    w = gguf.GGUFWriter(os.path.join(out, "qwen2.gguf"), "qwen2")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    vocab(w, [], ["<|endoftext|>"], pre="qwen2")
    w.add_bos_token_id(96)
    w.add_eos_token_id(96)
    w.add_pad_token_id(96)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT)
    add(w, "token_embd.weight", sd["model.embed_tokens.weight"], T.F16)
    names = [("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"),
             ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
             ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
             ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
             ("mlp.down_proj", "ffn_down")]
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names:
            p = f"model.layers.{i}.{hf}."
            add(w, f"blk.{i}.{gg}.weight", sd[p + "weight"], T.F16)
            if p + "bias" in sd:
                add(w, f"blk.{i}.{gg}.bias", sd[p + "bias"], T.F32)
    add(w, "output_norm.weight", sd["model.norm.weight"], T.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gpt2(out):
    import json
    cfg = json.load(open(os.path.join(MODELS, "gpt2", "config.json")))
    sd = load_file(os.path.join(MODELS, "gpt2", "model.safetensors"))
    pre = "transformer." if "transformer.wte.weight" in sd else ""
    w = gguf.GGUFWriter(os.path.join(out, "gpt2.gguf"), "gpt2")
    w.add_context_length(cfg["n_positions"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_feed_forward_length(4 * cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    w.add_head_count(cfg["n_head"])
    w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    vocab(w, [], ["<|endoftext|>"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    add(w, "token_embd.weight", sd[pre + "wte.weight"], T.F16)
    add(w, "position_embd.weight", sd[pre + "wpe.weight"], T.F16)
    names = [("ln_1", "attn_norm"), ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
             ("ln_2", "ffn_norm"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down")]
    for i in range(cfg["n_layer"]):
        for hf, gg in names:
            wt, b = sd[f"{pre}h.{i}.{hf}.weight"], sd[f"{pre}h.{i}.{hf}.bias"]
            if wt.ndim == 2:
                wt = wt.transpose(0, 1).contiguous()  # Conv1D [in, out] -> [out, in]
            add(w, f"blk.{i}.{gg}.weight", wt, T.F16)
            add(w, f"blk.{i}.{gg}.bias", b, T.F32)
    add(w, "output_norm.weight", sd[pre + "ln_f.weight"], T.F32)
    add(w, "output_norm.bias", sd[pre + "ln_f.bias"], T.F32)
    add(w, "output.weight", sd[pre + "wte.weight"], T.F16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bad(out):
    # an architecture tk does not run
    w = gguf.GGUFWriter(os.path.join(out, "mamba.gguf"), "mamba")
    w.add_block_count(1)
    w.add_embedding_length(8)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # hyperparameters that do not fit the tensors: embedding_length 64, token_embd dims [48, 3]
    w = gguf.GGUFWriter(os.path.join(out, "bad-shape.gguf"), "llama")
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(80)
    w.add_head_count(8)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tensor("token_embd.weight", np.zeros((3, 48), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "convert")
    os.makedirs(out, exist_ok=True)
    llama(out)
    qwen2(out)
    gpt2(out)
    bad(out)


if __name__ == "__main__":
    main()
