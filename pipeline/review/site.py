"""The workspace a request reaches, and the bundles a request may name: the one place an id from a URL
becomes a folder of the archive (only ids the catalog knows; a path in a request never reaches the file
system). Below the server and its handlers, which all take a `Workspace`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.archive import catalog
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.review.gate import Gate
from pipeline.transcript import read_json

ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class Workspace:
    archive: Path
    gate: Gate
    token: str  # per process: the page carries it, state-changing requests must send it back
    origin: str  # scheme://host:port the page is served from
    also: frozenset[str] = frozenset()  # other origins of the same pages (loopback names, --public-url)


@dataclass(frozen=True)
class Opened:
    """A bundle a request named, with its transcript.json read once for the whole request."""

    path: Path
    data: dict[str, Any]

    @property
    def sha256(self) -> str:
        return self.data["source"]["sha256"]


def bundle_of(ws: Workspace, key: str) -> Opened:
    """The bundle of an archive id; anything else is a 404 before a path is formed."""
    if not ID.fullmatch(key):
        raise LookupError(key)
    try:
        video = catalog.resolve(ws.archive, key)
    except catalog.CatalogError:
        raise LookupError(key) from None
    if video.bundle is None or not (ws.archive / video.bundle / TRANSCRIPT).is_file():
        raise LookupError(key)
    return open_bundle(ws.archive / video.bundle)


def open_bundle(bundle: Path) -> Opened:
    return Opened(bundle, read_json(bundle / TRANSCRIPT))
