"""GGUF files for Llama-family models, written with the ``gguf`` package and checked by reading them back.

The layout follows llama.cpp's converter for the ``llama`` architecture: tensor names from
``gguf``'s name map, the query and key projections permuted from Hugging Face's rotate-half
order to llama.cpp's interleaved rotary order, norms kept in float32, and the tokenizer
stored as a byte-level BPE vocabulary (``tokenizer.ggml.model = gpt2``) with its merges,
special tokens and chat template.

The round trip loads each file through transformers' GGUF loader and compares next-token
logits with the merged model on the same token ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tuneproof.errors import TuneproofError

__all__ = ["GGUF_TYPES", "check_round_trip", "gguf_tokenizer", "write_gguf"]

# Each format's relative rounding step: f16 keeps 11 significant bits (2^-11); q8_0 stores
# each block of 32 weights as 8-bit integers times the block's max/127, an error of at most
# max/254 (~2^-8). The round trip separates two scales. Rounding moves the logits by a few
# steps relative to the largest logit, growing slowly with depth as independent errors add
# (about the square root of the ~7 rounded matrices per layer: 4 steps for 2 layers, 15 for
# 30). A layout error (a tensor in the wrong order, unpermuted rotary projections) moves
# them by about their own size: 256 steps of q8_0, 2048 of f16. The tolerance, 20 steps,
# lies between, with room for models deeper than 30 layers.
GGUF_TYPES = {"f16": 2.0**-11, "q8_0": 2.0**-8}
TOLERANCE_STEPS = 20
_PRE = {"ByteLevel": "gpt-2", "Digits+ByteLevel": "smollm"}  # llama.cpp's names for these pre-tokenizers


def _need_gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise TuneproofError("GGUF export needs the `gguf` package. Fix: pip install 'gguf>=0.17'") from None
    return gguf


def _check_llama(config: Any) -> None:
    problems = []
    if config.model_type != "llama":
        problems.append(f"its architecture is {config.model_type!r}; this exporter writes Llama-family models only")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("it has bias terms in attention or MLP, which the llama GGUF layout has no place for")
    rope = getattr(config, "rope_scaling", None) or {}
    kind = rope.get("rope_type") or rope.get("type") if isinstance(rope, dict) else None
    if kind not in (None, "default"):
        problems.append(f"it uses {kind!r} rope scaling, which this exporter does not write")
    if problems:
        raise TuneproofError("GGUF export: " + "; ".join(problems) + ". Fix: export --format merged and convert it "
                             "with llama.cpp's convert_hf_to_gguf.py, which knows more architectures.")  # fmt: skip


def gguf_tokenizer(tok: Any, n_vocab: int) -> dict[str, Any]:
    """Tokens, token types, merges and the pre-tokenizer name of a byte-level BPE tokenizer.

    Raises:
        TuneproofError: the tokenizer is not byte-level BPE (e.g. sentencepiece), naming what is missing.
    """
    spec = json.loads(tok.backend_tokenizer.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    steps = [p.get("type") for p in pre.get("pretokenizers", [])] if pre.get("type") == "Sequence" else [pre.get("type")]
    pre_name = _PRE.get("+".join(str(s) for s in steps))
    if model.get("type") != "BPE" or pre_name is None:
        raise TuneproofError(
            f"GGUF export: the tokenizer is {model.get('type')} with pre-tokenizer {'+'.join(map(str, steps))}; this "
            "exporter writes byte-level BPE tokenizers (GPT-2 style: ByteLevel, or Digits+ByteLevel as SmolLM2) only, "
            "and a sentencepiece vocabulary needs its scores and byte tokens, which it does not write. Fix: export "
            "--format merged and convert it with llama.cpp's convert_hf_to_gguf.py."
        )
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [5] * n_vocab  # 5: UNUSED, for embedding rows beyond the vocabulary
    for text, i in model["vocab"].items():
        if i < n_vocab:
            tokens[i], types[i] = text, 1  # 1: NORMAL
    for added in spec.get("added_tokens") or []:
        if added["id"] < n_vocab:
            tokens[added["id"]], types[added["id"]] = added["content"], 3 if added.get("special") else 4  # CONTROL, USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre_name}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face's rotate-half rows to llama.cpp's interleaved rotary rows (its converter's ``permute``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model: Any, tok: Any, path: Path, qtype: str, *, name: str) -> None:
    """Write a merged Llama-family causal LM and its tokenizer to one GGUF file of type ``f16`` or ``q8_0``.

    Raises:
        TuneproofError: not a Llama-family model, a tokenizer this exporter cannot write, or no ``gguf`` package.
    """
    gguf = _need_gguf()
    cfg = model.config
    _check_llama(cfg)
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    vocab = gguf_tokenizer(tok, state["model.embed_tokens.weight"].shape[0])
    writer = gguf.GGUFWriter(str(path), "llama")
    _config_metadata(writer, gguf, cfg, name, qtype, len(vocab["tokens"]))
    _tokenizer_metadata(writer, tok, vocab)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, data in state.items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # tied: the loader takes the output layer from token_embd, as llama.cpp does
        new = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise TuneproofError(f"GGUF export: the tensor {hf_name} has no place in the llama GGUF layout. Fix: "
                                 "export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py.")  # fmt: skip
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, cfg.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, cfg.num_key_value_heads)
        _add_tensor(writer, gguf, new, data, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _config_metadata(writer: Any, gguf: Any, cfg: Any, name: str, qtype: str, n_vocab: int) -> None:
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = getattr(cfg, "rope_theta", None) or rope.get("rope_theta") or 10000.0
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(n_vocab)
    ftype = gguf.LlamaFileType.MOSTLY_F16 if qtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _tokenizer_metadata(writer: Any, tok: Any, vocab: dict[str, Any]) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab["pre"])
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    for key, value in (("bos", tok.bos_token_id), ("eos", tok.eos_token_id), ("pad", tok.pad_token_id),
                       ("unk", tok.unk_token_id)):  # fmt: skip
        if value is not None:
            getattr(writer, f"add_{key}_token_id")(int(value))
    writer.add_add_bos_token(bool(getattr(tok, "add_bos_token", False)))
    if getattr(tok, "chat_template", None):
        writer.add_chat_template(tok.chat_template)


def _add_tensor(writer: Any, gguf: Any, name: str, data: np.ndarray, qtype: str) -> None:
    """2-D weights in ``qtype`` (f16 where a q8_0 row does not fill whole blocks of 32); 1-D in float32."""
    if data.ndim < 2:
        writer.add_tensor(name, data.astype(np.float32))
        return
    q8 = gguf.GGMLQuantizationType.Q8_0
    if qtype == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[q8][0] == 0:
        writer.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), q8), raw_dtype=q8)
    else:
        writer.add_tensor(name, data.astype(np.float16))


def check_round_trip(model: Any, tok: Any, path: Path, qtype: str, prompts: list[str]) -> dict[str, Any]:
    """Load ``path`` through transformers' GGUF loader and compare next-token logits with ``model``.

    Both models get the same token ids (the merged tokenizer's); the GGUF's own tokenizer is
    checked separately, by whether it encodes every prompt to the same ids.

    Returns:
        ``file``, ``type``, ``prompts``, ``max_abs_diff`` (the largest absolute difference of any
        next-token logit), ``max_logit``, ``relative_diff`` (the two divided), ``tolerance``,
        ``passed`` and ``tokenizer_matches``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneproof.models import model_device

    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    loaded_tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    diff, scale, same_ids = 0.0, 0.0, True
    for text in prompts:
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        same_ids &= loaded_tok(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()
        with torch.inference_mode():
            want = model(input_ids=ids.to(model_device(model))).logits[0, -1].float().cpu()
            got = loaded(input_ids=ids).logits[0, -1].float()
        diff, scale = max(diff, float((want - got).abs().max())), max(scale, float(want.abs().max()))
    tolerance = TOLERANCE_STEPS * GGUF_TYPES[qtype]
    relative = diff / max(scale, 1e-12)
    return {"file": path.name, "type": qtype, "prompts": len(prompts), "max_abs_diff": diff, "max_logit": scale,
            "relative_diff": relative, "tolerance": tolerance, "passed": relative <= tolerance,
            "tokenizer_matches": bool(same_ids)}  # fmt: skip
