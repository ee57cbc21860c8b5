"""Downloading an official Whisper checkpoint from OpenAI's URL: only `testimony models install NAME` calls it.

The URL carries the file's SHA-256 (openai-whisper's own table of models), so the download is checked
against it before it is put where a model belongs. Bytes land in `<store>/.downloads/openai--NAME.pt`, kept
after a dropped transfer so the same command resumes from where it stopped (an HTTP Range request; a
server that ignores it sends the whole file again); a file that does not match is deleted.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from pipeline import config
from pipeline.hashing import file_sha256
from pipeline.store.hub import DOWNLOADS, HubError

BLOCK = 1 << 20


def url_of(name: str) -> str:
    import whisper

    return whisper._MODELS[name]


def staging_file(name: str) -> Path:
    return config.models_dir() / DOWNLOADS / f"openai--{name}.pt"


def download(name: str, checkpoint: Path) -> str:
    """`checkpoint` made from the official file for `name`, checked; returns the URL it came from."""
    url = url_of(name)
    part = staging_file(name)
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        _fetch(url, part)
    except Exception as exc:  # no route, refused, dropped: what arrived stays for the next attempt
        raise HubError(f"could not download Whisper {name} from {url} ({type(exc).__name__}: {exc}). Nothing was "
                       f"installed; run the same command again to resume ({part} keeps what arrived)") from None
    published, received = url.split("/")[-2], file_sha256(part)
    if received != published:
        part.unlink(missing_ok=True)
        raise HubError(f"{url}: the download does not match its published SHA-256 ({published}, received "
                       f"{received}); it was deleted and nothing was installed")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, checkpoint)
    return url


def _fetch(url: str, part: Path) -> None:
    """Append to `part` from its current size (a Range request); start again if the server sends it all."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response, open(part, "ab" if have else "wb") as out:
        if have and response.status != 206:  # the whole file again, from its first byte
            out.truncate(0)
        for block in iter(lambda: response.read(BLOCK), b""):
            out.write(block)
