"""Writing a file so that a reader, a crash or a kill finds the old file or the whole new one, never half.

One helper for every file the project replaces (records, routes, checkpoints' companions, converted
weights, exports): write beside under a hidden temporary name, flush and fsync, rename over the
target, fsync the folder so the rename itself survives a power cut. On any error the temporary file
goes and the target is untouched.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")


@contextmanager
def replacing(path: str | os.PathLike, *, mode: int | None = None, binary: bool = False) -> Iterator[IO]:
    """A file object for `path`'s new content, renamed into place when the block ends without error.

    `mode` is set explicitly (the umask neither weakens nor widens it); None leaves the umask's.
    """
    path = Path(path)
    temp = temporary_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        text = {} if binary else {"encoding": "utf-8", "newline": "\n"}
        with open(fd, "wb" if binary else "w", **text) as f:  # a file object writes it all or raises
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish(temp, path, synced=True)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str, *, mode: int | None = None) -> None:
    """Replace `path` with `text` (UTF-8, \\n line ends) atomically."""
    with replacing(path, mode=mode) as f:
        f.write(text)


def publish(temp: str | os.PathLike, path: str | os.PathLike, *, synced: bool = False) -> None:
    """Rename a finished file (or folder) `temp` over `path`; fsync it first unless `synced`."""
    temp, path = Path(temp), Path(path)
    if not synced and temp.is_file():
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new entry in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
