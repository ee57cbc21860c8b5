"""Models adapted on an archive's witnesses belong to that archive, and are followed only for it.

A model fine-tuned on testimony can recall what witnesses said, so its weights, its record and its route
live in the archive (`<archive>/.models/NAME.pt`, `NAME.pt.json`, `routes.toml`), the folder that is
encrypted, backed up and wiped as one. The machine's model store holds neither a link nor a route to it:
another archive on the same machine must never transcribe with a model trained on this one's witnesses.
A run, a serve, an eval or a `verify --reproduce` for this archive reads its routes (`routes.load_routes`
with the archive); nothing else does. An older testimony did link such models into the store and route
them there: such a link is no longer followed, and a one-line warning names the file to remove.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODELS = ".models"  # in the archive
ROUTES = "routes.toml"  # in MODELS: the archive's own routes to its adapted models

_warned: set[str] = set()


def folder(archive: str | Path) -> Path:
    return Path(archive) / MODELS


def routes_file(archive: str | Path) -> Path:
    return folder(archive) / ROUTES


def model_path(archive: str | Path, name: str) -> Path:
    return folder(archive) / f"{name}.pt"


def names(archive: str | Path) -> list[str]:
    """The adapted models this archive holds (each `.pt` with its record beside it)."""
    where = folder(archive)
    return sorted(p.stem for p in where.glob("*.pt") if (where / f"{p.name}.json").is_file()) if where.is_dir() else []


def points_into_an_archive(entry: Path) -> bool:
    """A store entry that is a link into some archive's `.models/` (what an older `testimony adapt` made)."""
    return entry.is_symlink() and entry.resolve().parent.name == MODELS


def warn_once(key: str | Path, line: str) -> None:
    """One line on standard error per file and process: said, not repeated for every clip of a batch."""
    if str(key) not in _warned:
        _warned.add(str(key))
        print(f"warning: {line}", file=sys.stderr, flush=True)


def stale_link(entry: Path) -> str:
    """What to say about a store link into an archive's `.models/`: why it is ignored and what to remove."""
    return (f"{entry} links to {entry.resolve()}, a model adapted on an archive's witnesses; the model store "
            f"no longer follows such links (an adapted model is used only for its own archive): remove {entry}")
