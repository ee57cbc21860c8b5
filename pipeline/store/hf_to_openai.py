"""Turn a Hugging Face transformers Whisper folder into an openai-whisper checkpoint.

Why: fine-tuned Kazakh and Uyghur Whisper models are published as transformers folders
(config.json + safetensors), but our decoding, word timestamps and language detection use
openai-whisper. The two layouts hold the same tensors under other names, so the conversion
only renames: float16 stays float16 and nothing is recomputed (bfloat16 is widened to float32,
which is exact, so every tool that reads the checkpoint through numpy still can).

Refused, with a ModelMissingError that says why: folders without config.json or weights,
models that are not Whisper, tensors whose shapes openai-whisper cannot hold, and vocabularies
other than the multilingual one openai-whisper's tokenizer knows (a fine-tune that changed the
tokenizer would decode to the wrong text without any error).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import atomic
from pipeline.errors import ModelMissingError
from pipeline.store.ct2_to_openai import encode_alignment_heads

if TYPE_CHECKING:  # importing torch/whisper is slow; only the converter needs them
    import torch
    from whisper.model import ModelDimensions

_MULTILINGUAL_VOCAB = 51865  # openai-whisper: n_vocab >= 51865 means the multilingual tokenizer
_AUDIO_CTX = 1500  # openai-whisper always feeds 30 s (3000 frames) to a stride-2 conv
_N_MELS = (80, 128)  # the mel filter banks openai-whisper ships
# config.json key -> ModelDimensions field
_DIMS = {"n_mels": "num_mel_bins", "n_audio_ctx": "max_source_positions",
         "n_audio_state": "d_model", "n_audio_head": "encoder_attention_heads",
         "n_audio_layer": "encoder_layers", "n_vocab": "vocab_size",
         "n_text_ctx": "max_target_positions", "n_text_state": "d_model",
         "n_text_head": "decoder_attention_heads", "n_text_layer": "decoder_layers"}
# transformers layer part -> openai-whisper ResidualAttentionBlock part
_BLOCK_PARTS = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key",
                "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out",
                "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
                "encoder_attn.v_proj": "cross_attn.value",
                "encoder_attn.out_proj": "cross_attn.out",
                "self_attn_layer_norm": "attn_ln", "encoder_attn_layer_norm": "cross_attn_ln",
                "final_layer_norm": "mlp_ln", "fc1": "mlp.0", "fc2": "mlp.2"}
_TOP_LEVEL = {"encoder.embed_positions.weight": "encoder.positional_embedding",
              "decoder.embed_positions.weight": "decoder.positional_embedding",
              "decoder.embed_tokens.weight": "decoder.token_embedding.weight"}
_NORMS = {"encoder.layer_norm": "encoder.ln_post", "decoder.layer_norm": "decoder.ln"}
_LAYER = re.compile(r"(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)")


def _config(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_whisper(config: dict[str, Any]) -> bool:
    architectures = config.get("architectures") or []
    return config.get("model_type") == "whisper" or any(
        isinstance(a, str) and a.startswith("Whisper") for a in architectures)


def is_hf_whisper_folder(path: Path) -> bool:
    """True for a transformers Whisper folder, so `models import` can pick this converter
    over copying an openai `.pt`; cheap (reads config.json only, imports no torch)."""
    path = Path(path)
    config = _config(path) if path.is_dir() else None
    return config is not None and _is_whisper(config)


def _refuse(folder: Path, problem: str) -> ModelMissingError:
    return ModelMissingError(f"{folder}: cannot import as a Whisper model: {problem}")


def _dims(folder: Path, config: dict[str, Any]) -> "ModelDimensions":
    """openai-whisper's dimensions from config.json, refusing what openai-whisper cannot run."""
    from whisper.model import ModelDimensions
    from whisper.tokenizer import LANGUAGES

    missing = sorted({key for key in _DIMS.values() if not isinstance(config.get(key), int)})
    if missing:
        raise _refuse(folder, f"config.json lacks integer {', '.join(missing)}")
    dims = ModelDimensions(**{field: int(config[key]) for field, key in _DIMS.items()})
    activation = config.get("activation_function", "gelu")
    if activation != "gelu":
        raise _refuse(folder, f"activation_function is {activation!r}; openai-whisper uses 'gelu'")
    if config.get("scale_embedding", False):
        raise _refuse(folder, "scale_embedding is true; openai-whisper never scales embeddings")
    if dims.n_mels not in _N_MELS:
        raise _refuse(folder, f"num_mel_bins is {dims.n_mels}; openai-whisper computes only "
                              f"{' or '.join(map(str, _N_MELS))} mel bins")
    if dims.n_audio_ctx != _AUDIO_CTX:
        raise _refuse(folder, f"max_source_positions is {dims.n_audio_ctx}; openai-whisper always "
                              f"encodes 30 s windows ({_AUDIO_CTX} positions)")
    for side in ("encoder", "decoder"):
        ffn = config.get(f"{side}_ffn_dim", 4 * dims.n_audio_state)
        if ffn != 4 * dims.n_audio_state:
            raise _refuse(folder, f"{side}_ffn_dim is {ffn}; openai-whisper needs 4 x d_model = "
                                  f"{4 * dims.n_audio_state}")
    top = _MULTILINGUAL_VOCAB + len(LANGUAGES) - 99  # one more token per language added later
    if not _MULTILINGUAL_VOCAB <= dims.n_vocab <= top:
        english = dims.n_vocab < _MULTILINGUAL_VOCAB
        kind = "an English-only model" if english else "a changed tokenizer"
        raise _refuse(folder, f"vocab_size is {dims.n_vocab} ({kind}); openai-whisper's "
                              f"multilingual tokenizer has {_MULTILINGUAL_VOCAB}..{top} tokens, "
                              "so this model's tokens would decode to the wrong text")
    return dims


def _weight_files(folder: Path) -> list[Path]:
    """The files holding the weights: one, or every shard an index names."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if not index.is_file():
            continue
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted({folder / name for name in weight_map.values()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _refuse(folder, f"{index_name} is not a shard index ({exc})") from None
        absent = [p.name for p in shards if not p.is_file()]
        if absent:
            raise _refuse(folder, f"{index_name} names missing shards: {', '.join(absent)}")
        return shards
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return [folder / name]
    hint = (" (this is a PEFT/LoRA adapter: merge it into its base model and save that)"
            if (folder / "adapter_config.json").is_file() else "")
    raise _refuse(folder, "no model.safetensors, pytorch_model.bin or shard index found" + hint)


def _read_weights(folder: Path) -> dict[str, "torch.Tensor"]:
    import torch
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        try:
            if path.suffix == ".safetensors":
                part = load_file(path)
            else:
                part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated file, wrong format, pickled code
            problem = f"{path.name} is unreadable ({type(exc).__name__}: {exc})"
            raise _refuse(folder, problem) from None
        if not isinstance(part, dict):
            raise _refuse(folder, f"{path.name} holds no named tensors")
        tensors.update(part)
    return tensors


def _openai_name(name: str) -> str | None:
    """openai-whisper's name for a transformers parameter (without the ``model.`` prefix)."""
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    stem, _, kind = name.rpartition(".")
    if stem in _NORMS:
        return f"{_NORMS[stem]}.{kind}"
    if re.fullmatch(r"encoder\.conv[12]\.(weight|bias)", name):
        return name
    match = _LAYER.fullmatch(name)
    if match and match.group(3) in _BLOCK_PARTS:
        side, layer, part, kind = match.groups()
        return f"{side}.blocks.{layer}.{_BLOCK_PARTS[part]}.{kind}"
    return None


def _to_openai(folder: Path, tensors: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """Rename every tensor; anything openai-whisper has no place for is an error, not dropped."""
    import torch

    src = {name.removeprefix("model."): t for name, t in tensors.items()}
    projection = src.pop("proj_out.weight", None)
    embedding = src.get("decoder.embed_tokens.weight")
    if projection is not None and embedding is not None and not torch.equal(projection, embedding):
        raise _refuse(folder, "proj_out is not tied to the token embedding; openai-whisper "
                              "computes logits with the token embedding itself")
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in src.items():
        target = _openai_name(name)
        if target is None:
            unknown.append(name)
        elif target.endswith(".key.bias"):  # openai-whisper's key projections have no bias
            if torch.any(tensor != 0):
                raise _refuse(folder, f"{name} is not zero; openai-whisper has no key bias")
        else:
            state[target] = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
    if unknown:
        names = ", ".join(sorted(unknown)[:8])
        raise _refuse(folder, f"tensors openai-whisper has no place for: {names}")
    return state


def _check_shapes(folder: Path, state: dict[str, "torch.Tensor"], dims: "ModelDimensions") -> None:
    """Compare against openai-whisper's own modules, built on the meta device (no memory)."""
    import torch
    from whisper.model import AudioEncoder, TextDecoder, sinusoids

    with torch.device("meta"):  # Whisper() itself needs to_sparse, which meta lacks
        encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state,
                               dims.n_audio_head, dims.n_audio_layer)
        decoder = TextDecoder(dims.n_vocab, dims.n_text_ctx, dims.n_text_state,
                              dims.n_text_head, dims.n_text_layer)
    expected = {f"encoder.{k}": v.shape for k, v in encoder.state_dict().items()}
    expected.update({f"decoder.{k}": v.shape for k, v in decoder.state_dict().items()})
    if "encoder.positional_embedding" not in state:  # a fixed buffer some exports leave out
        dtype = state.get("encoder.conv1.weight", torch.empty(0)).dtype
        positions = sinusoids(dims.n_audio_ctx, dims.n_audio_state)
        state["encoder.positional_embedding"] = positions.to(dtype)
    missing = sorted(expected.keys() - state.keys())
    if missing:
        raise _refuse(folder, f"weights lack {len(missing)} tensors config.json implies, e.g. "
                              f"{', '.join(missing[:4])}")
    extra = sorted(state.keys() - expected.keys())
    if extra:
        raise _refuse(folder, f"weights have layers config.json does not declare: "
                              f"{', '.join(extra[:4])}")
    wrong = [f"{k} is {tuple(state[k].shape)}, expected {tuple(shape)}"
             for k, shape in expected.items() if state[k].shape != shape]
    if wrong:
        raise _refuse(folder, "tensor shapes do not match config.json: " + "; ".join(wrong[:4]))


def _alignment_heads(folder: Path, dims: "ModelDimensions") -> bytes | None:
    """generation_config.json's cross-attention heads for word timestamps, in openai's form."""
    path = folder / "generation_config.json"
    if not path.is_file():
        return None
    try:
        pairs = json.loads(path.read_text(encoding="utf-8")).get("alignment_heads")
    except (OSError, ValueError, AttributeError) as exc:
        raise _refuse(folder, f"generation_config.json is unreadable ({exc})") from None
    if not pairs:
        return None
    valid = isinstance(pairs, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(i, int) for i in p)
        and 0 <= p[0] < dims.n_text_layer and 0 <= p[1] < dims.n_text_head for p in pairs)
    if not valid:
        raise _refuse(folder, f"generation_config.json alignment_heads are not [layer, head] pairs "
                              f"within {dims.n_text_layer} layers x {dims.n_text_head} heads")
    return encode_alignment_heads(pairs, dims.n_text_layer, dims.n_text_head)


def convert_hf_whisper(folder: Path, target: Path) -> Path:
    """Write the openai-whisper checkpoint for a transformers Whisper folder; returns target.

    Written to ``target.partial`` and renamed into place, so an interrupted import never
    leaves a truncated checkpoint where the model store would find it.
    """
    import torch

    folder, target = Path(folder), Path(target)
    if not folder.is_dir():
        raise ModelMissingError(f"{folder}: no such folder; expected a transformers Whisper "
                                "folder (config.json + model.safetensors)")
    config = _config(folder)
    if config is None:
        raise _refuse(folder, "no readable config.json (expected a transformers Whisper folder)")
    if not _is_whisper(config):
        raise _refuse(folder, f"config.json says model_type {config.get('model_type')!r} "
                              f"({config.get('architectures')}), not a Whisper model")
    dims = _dims(folder, config)
    state = _to_openai(folder, _read_weights(folder))
    _check_shapes(folder, state, dims)
    checkpoint: dict[str, Any] = {"dims": asdict(dims),
                                  "model_state_dict": {k: t.contiguous() for k, t in state.items()}}
    heads = _alignment_heads(folder, dims)
    if heads is not None:
        checkpoint["alignment_heads"] = heads

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(target, binary=True) as f:
        torch.save(checkpoint, f)
    return target
