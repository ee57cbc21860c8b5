"""What the model store holds: the checked-in manifest of known models, and a record per installed one.

A record (`NAME.json` beside a checkpoint file or a package folder) keeps the SHA-256 of every file,
the origin and the licence, so `testimony models verify` can prove the weights are the ones a
transcript cites, and a run can cite them without re-hashing hundreds of megabytes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import atomic, config
from pipeline.hashing import file_sha256
from pipeline.store import toml

MANIFEST = config.DEFAULTS / "manifest.toml"
LOCAL_MANIFEST = "manifest.local.toml"  # in the store: a team's own entries and sets, over the shipped ones
HUB = "https://huggingface.co/"
RECOMMENDED = "recommended"  # the manifest's table of sets per language, not a kind of model


@dataclass(frozen=True)
class KnownModel:
    """One model the manifest names.

    kind: "whisper" (ASR), "ctc" (ASR: a CTC export the `ctc` engine runs) or "translation".
    source: an official Whisper URL, or `https://huggingface.co/OWNER/NAME` for a hub repository.
    language, whisper_token: for a hub Whisper fine-tune, the language it is routed for and the token
    it was trained over (a Uyghur model over `uz`, say).
    """

    name: str
    kind: str
    languages: str
    source: str
    licence: str
    size_mb: float | None = None
    sha256: str | None = None
    quality: list[dict] = field(default_factory=list)
    hint: str = ""  # how to get it without a network
    language: str | None = None
    whisper_token: str | None = None
    note: str = ""  # what a reader must know first (e.g. a download source not verified)

    @property
    def repo_id(self) -> str | None:
        """The hub repository, for a model installed through the hub."""
        return self.source.removeprefix(HUB).strip("/") if self.source.startswith(HUB) else None


@dataclass(frozen=True)
class Recommended:
    """A language's set: the ASR model and the translation model that published results rank best, and
    the other choice of each that `install --for` takes when asked (`--engine ctc`, `--translation madlad`)."""

    language: str
    asr: str | None
    translation: str | None
    note: str = ""
    also: tuple[str, ...] = ()  # models named beside the set, listed by `install --for`, not installed by it
    ctc: str | None = None  # the CTC model `install --for --engine ctc` installs and routes instead of `asr`
    madlad: str | None = None  # the MADLAD model `--translation madlad` installs and routes instead of `translation`


def _manifest() -> dict:
    """The shipped manifest with the store's local one laid over it, entry by entry."""
    data = toml.loads(MANIFEST.read_text(encoding="utf-8"))
    local = config.models_dir() / LOCAL_MANIFEST
    if local.is_file():
        for table, entries in toml.loads(local.read_text(encoding="utf-8")).items():
            data.setdefault(table, {}).update(entries)
    return data


def known_models() -> dict[str, KnownModel]:
    known = {}
    for kind, table in _manifest().items():
        if kind == RECOMMENDED:
            continue
        for name, entry in table.items():
            known[name] = KnownModel(
                name=name, kind=kind, languages=entry.get("languages", ""), source=entry.get("source", ""),
                licence=entry.get("licence", ""), size_mb=entry.get("size_mb"), sha256=entry.get("sha256"),
                quality=list(entry.get("quality", [])), hint=entry.get("offline") or entry.get("import", ""),
                language=entry.get("language"), whisper_token=entry.get("whisper_token"),
                note=entry.get("note", ""))
    return known


def recommended_sets() -> dict[str, Recommended]:
    """Language -> its recommended set, from the manifest's `[recommended.LANG]` tables."""
    return {lang: Recommended(lang, entry.get("asr"), entry.get("translation"), entry.get("note", ""),
                              tuple(entry.get("also", ())), entry.get("ctc"), entry.get("madlad"))
            for lang, entry in _manifest().get(RECOMMENDED, {}).items()}


@dataclass
class Installed:
    """One model in the store: a Whisper checkpoint file or a translation package folder."""

    name: str
    kind: str  # "whisper", "argos" or "ctc"
    path: Path
    record: dict[str, Any]

    @property
    def size(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size if self.path.exists() else 0

    @property
    def languages(self) -> str:
        if self.kind == "argos":
            return f"{self.record.get('from_code', '?')} -> {self.record.get('to_code', '?')}"
        return ", ".join(self.record.get("languages", [])) or "multilingual"


def record_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


def _hash_files(model_path: Path) -> dict[str, str]:
    if model_path.is_dir():
        return {p.relative_to(model_path).as_posix(): file_sha256(p)
                for p in sorted(model_path.rglob("*")) if p.is_file()}
    return {model_path.name: file_sha256(model_path)}


def write_record(model_path: Path, *, name: str, origin: str, licence: str = "", **extra: Any) -> dict:
    """Hash `model_path` (file or folder) and record it with where it came from."""
    files = _hash_files(model_path)
    record = {"name": name, "origin": origin, "licence": licence,
              "installed": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra, "files": files}
    if model_path.is_file():
        record["sha256"] = files[model_path.name]
    atomic.write_text(record_path(model_path), json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record


def check_before_load(model_path: Path, expected: dict[str, str], name: str, fix: str | None = None) -> None:
    """Re-hash the model files a load will read against their record; raise before using a changed one.

    Transcripts cite the recorded hash, so loading different bytes would make that citation false.
    """
    from pipeline.errors import ModelIntegrityError

    for rel, digest in expected.items():
        path = model_path if model_path.is_file() and rel == model_path.name else model_path / rel
        now = file_sha256(path) if path.is_file() else None
        if now != digest:
            raise ModelIntegrityError(
                f"model {name}: {path} {'is missing' if now is None else 'fails its SHA-256 check'} (recorded "
                f"{digest}{'' if now is None else f', now {now}'}): it was changed or damaged after it was "
                "installed, so nothing was transcribed or translated with it. "
                + (fix or f"See `testimony models verify`, then replace it: `testimony models remove {name}` "
                   "and install or import it again."))


def read_record(model_path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(record_path(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def installed_models() -> list[Installed]:
    found = []
    whisper_dir = config.whisper_dir()
    if whisper_dir.is_dir():
        for path in sorted(whisper_dir.glob("*.pt")):
            found.append(Installed(path.stem, "whisper", path, read_record(path) or {}))
    argos_dir = config.argos_dir()
    if argos_dir.is_dir():
        for path in sorted(argos_dir.iterdir()):
            meta = path / "metadata.json"
            if path.is_dir() and not path.name.startswith(".") and meta.is_file():
                record = read_record(path) or {}
                try:
                    record = {**json.loads(meta.read_text(encoding="utf-8")), **record}
                except ValueError:
                    pass
                found.append(Installed(path.name, "argos", path, record))
    ctc_dir = config.models_dir() / "ctc"
    if ctc_dir.is_dir():
        for path in sorted(ctc_dir.iterdir()):
            if path.is_dir() and not path.name.startswith("."):
                found.append(Installed(path.name, "ctc", path, read_record(path) or {}))
    return found


def find_installed(name: str) -> list[Installed]:
    return [m for m in installed_models() if m.name == name]


@dataclass(frozen=True)
class Problem:
    model: str
    path: str
    what: str  # "changed", "missing", "extra", "unrecorded"


def verify(models: list[Installed] | None = None) -> list[Problem]:
    """Re-hash every installed model against its record: changed, missing and extra files."""
    problems = []
    for model in installed_models() if models is None else models:
        recorded = model.record.get("files")
        if not recorded and model.record.get("sha256"):  # records written before per-file hashes
            recorded = {model.path.name: model.record["sha256"]}
        if not recorded:
            problems.append(Problem(model.name, str(model.path), "unrecorded"))
            continue
        actual = _hash_files(model.path) if model.path.exists() else {}
        for rel, digest in recorded.items():
            if rel not in actual:
                problems.append(Problem(model.name, rel, "missing"))
            elif actual[rel] != digest:
                problems.append(Problem(model.name, rel, "changed"))
        problems += [Problem(model.name, rel, "extra") for rel in sorted(set(actual) - set(recorded))]
    return problems


def remove(model: Installed) -> None:
    """Delete a model and its record; the record goes last, so a failed delete still verifies as broken."""
    if model.path.is_dir():
        shutil.rmtree(model.path)
    elif model.path.exists():
        model.path.unlink()
    record_path(model.path).unlink(missing_ok=True)
