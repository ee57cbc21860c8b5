"""The adapted model enters the store: its weights under the archive, its record complete, its route earned.

A model trained on testimony can recall what witnesses said (names above all), so its weights, its
record and its route stay inside the archive (`<archive>/.models/`, see `store.archive_models`), the
folder that is encrypted, backed up and wiped as one; the machine's model store gets neither a link
nor a route, so another archive on the same machine never transcribes with it. The record says it is
witness-derived and what it learned from, for `models pack` to warn.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

from pipeline import config
from pipeline.store import archive_models, routes
from pipeline.store import registry as model_registry


def archive_path(archive: Path, name: str) -> Path:
    return archive_models.model_path(archive, name)


def place(archive: Path, name: str, weights: Path) -> Path:
    """Copy the trained weights into the archive's model folder (read-only, as kept originals are)."""
    dest = archive_path(archive, name)
    config.private_dirs(dest.parent)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.copyfile(weights, partial)
    os.chmod(partial, config.file_mode() & 0o444)
    os.replace(partial, dest)
    return dest


def versions() -> dict[str, str]:
    """The libraries whose arithmetic made the weights."""
    import numpy
    import torch
    import whisper

    return {"python": platform.python_version(), "torch": torch.__version__, "openai-whisper": whisper.__version__,
            "numpy": numpy.__version__}


def record(archive: Path, name: str, path: Path, facts: dict[str, Any]) -> dict:
    """Hash the weights and write their record beside them: everything needed to judge and redo the run."""
    return model_registry.write_record(path, name=name, licence=facts["base"].get("licence", ""),
                                       origin=f"adapted from {facts['base']['name']} on {archive}",
                                       witness_derived=True, archive=str(archive), languages=[facts["language"]],
                                       versions=versions(), **facts)


def route(archive: Path, language: str, name: str, token: str) -> routes.Route:
    """The language's route for this archive only (`<archive>/.models/routes.toml`)."""
    return routes.set_archive_route(archive, language, asr_model=name, whisper_token=token, engine="")


def summary(record: dict) -> str:
    """One line for `testimony models`: what it learned from and what it scored."""
    before, after = record.get("before") or {}, record.get("after") or {}
    return (f"adapted from {record.get('base', {}).get('name', '?')} on {len(record.get('learned_from', []))} "
            f"recording(s) of {record.get('archive', '?')} (witness-derived); held-out WER "
            f"{_pct(before.get('wer'))} -> {_pct(after.get('wer'))}, CER {_pct(before.get('cer'))} -> "
            f"{_pct(after.get('cer'))}; {'routed' if record.get('routed') else 'not routed'}")


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.1f}%"


def pack_warning(model: model_registry.Installed) -> str | None:
    """What `models pack` says before it carries a witness-derived model out of the archive."""
    rec = model.record
    if not rec.get("witness_derived"):
        return None
    learned = ", ".join(f"{r.get('file_name') or r['sha256'][:12]} (revision {r.get('revision')})"
                        for r in rec.get("learned_from", []))
    return (f"warning: {model.name} was trained on testimony from {rec.get('archive', 'an archive')} and can "
            f"recall what witnesses said (names above all); it learned from: {learned or 'unknown recordings'}. "
            "Carry it only to machines under the same protection as that archive.")
