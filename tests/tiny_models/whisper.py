"""Tiny random Whisper models in the two Whisper formats the store imports.

- `openai_whisper_checkpoint`: openai-whisper's own `.pt` (`dims` and `model_state_dict`).
- `random_whisper` + `write_ct2`: a CTranslate2 (faster-whisper) Whisper folder, written against
  ctranslate2's own WhisperSpec (the inverse of pipeline.store.ct2_to_openai, written independently, so
  the converter's tests have a ground truth).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import whisper
from ctranslate2.specs import whisper_spec
from whisper.model import ModelDimensions, Whisper
from whisper.tokenizer import get_tokenizer


def openai_whisper_checkpoint(path: Path, seed: int = 0) -> Path:
    """A random-weight multilingual Whisper checkpoint in openai-whisper's own format."""
    torch.manual_seed(seed)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                           n_audio_layer=1, n_vocab=51865, n_text_ctx=448, n_text_state=64,
                           n_text_head=2, n_text_layer=1)
    model = whisper.model.Whisper(dims)
    with torch.no_grad():  # openai-whisper leaves the decoder's positions as torch.empty: garbage, even NaN
        model.decoder.positional_embedding.normal_(0.0, 0.02)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


TINY = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=4,
                       n_audio_layer=2, n_vocab=51865, n_text_ctx=32, n_text_state=64,
                       n_text_head=4, n_text_layer=2)
TINY_HEADS = [(1, 0), (1, 3)]


def random_whisper(seed: int) -> Whisper:
    """Random weights everywhere, layer norms included, so a swapped name cannot hide."""
    torch.manual_seed(seed)
    model = Whisper(TINY)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if name.endswith("embedding.weight") else 0.2
            p.copy_(torch.randn_like(p) * scale + (1.0 if name.endswith("ln.weight") else 0.0))
        # identical values on purpose: CTranslate2 stores the second one as an alias
        model.encoder.blocks[1].attn_ln.weight.copy_(model.encoder.blocks[0].attn_ln.weight)
    return model.eval()


def ct2_vocabulary() -> list[str]:
    tokens = [f"tok{i}" for i in range(TINY.n_vocab)]  # n_vocab is the multilingual one in every model here
    for token, index in get_tokenizer(multilingual=True).special_tokens.items():
        tokens[index] = token
    return tokens


def write_ct2(model: Whisper, out_dir: Path, quantization: str | None) -> Path:
    """The inverse of the converter, written against ctranslate2's own WhisperSpec."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    d = TINY
    spec = whisper_spec.WhisperSpec(d.n_audio_layer, d.n_audio_head, d.n_text_layer, d.n_text_head)

    def lin(target, key, bias=True):
        target.weight = sd[key + ".weight"]
        if bias:
            target.bias = sd[key + ".bias"]

    def ln(target, key):
        target.gamma, target.beta = sd[key + ".weight"], sd[key + ".bias"]

    def fused(target, keys):
        target.weight = np.concatenate([sd[k + ".weight"] for k in keys])
        zero = np.zeros(d.n_text_state, np.float32)  # the key projection has no bias
        target.bias = np.concatenate([sd.get(k + ".bias", zero) for k in keys])

    def block(layer, key, cross):
        fused(layer.self_attention.linear[0],
              [f"{key}.attn.query", f"{key}.attn.key", f"{key}.attn.value"])
        lin(layer.self_attention.linear[1], f"{key}.attn.out")
        ln(layer.self_attention.layer_norm, f"{key}.attn_ln")
        if cross:
            lin(layer.attention.linear[0], f"{key}.cross_attn.query")
            fused(layer.attention.linear[1], [f"{key}.cross_attn.key", f"{key}.cross_attn.value"])
            lin(layer.attention.linear[2], f"{key}.cross_attn.out")
            ln(layer.attention.layer_norm, f"{key}.cross_attn_ln")
        lin(layer.ffn.linear_0, f"{key}.mlp.0")
        lin(layer.ffn.linear_1, f"{key}.mlp.2")
        ln(layer.ffn.layer_norm, f"{key}.mlp_ln")

    enc, dec = spec.encoder, spec.decoder
    lin(enc.conv1, "encoder.conv1")
    lin(enc.conv2, "encoder.conv2")
    enc.position_encodings.encodings = sd["encoder.positional_embedding"]
    ln(enc.layer_norm, "encoder.ln_post")
    for i, layer in enumerate(enc.layer):
        block(layer, f"encoder.blocks.{i}", cross=False)
    dec.embeddings.weight = sd["decoder.token_embedding.weight"]
    dec.position_encodings.encodings = sd["decoder.positional_embedding"]
    dec.projection.weight = sd["decoder.token_embedding.weight"]
    ln(dec.layer_norm, "decoder.ln")
    for i, layer in enumerate(dec.layer):
        block(layer, f"decoder.blocks.{i}", cross=True)

    tokenizer = get_tokenizer(multilingual=True)
    spec.register_vocabulary(ct2_vocabulary())
    spec.config.suppress_ids, spec.config.suppress_ids_begin = [], []
    spec.config.lang_ids = list(tokenizer.all_language_tokens)
    spec.config.alignment_heads = [list(p) for p in TINY_HEADS]
    spec.validate()
    spec.optimize(quantization=quantization)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    return out_dir


def ct2_folder(folder: Path, seed: int = 0) -> Path:
    """A CTranslate2 Whisper folder (float16, as faster-whisper's published ones are) with random weights."""
    return write_ct2(random_whisper(seed), folder, quantization="float16")
