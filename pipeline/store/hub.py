"""Downloading a model repository from a Hugging Face hub (or a mirror of one), file by file, checked.

The only code that goes online, and only when a person runs `testimony models install`. The hub is
`HF_ENDPOINT` when set (a mirror inside the organisation, or a local copy), else huggingface.co. Each
file is fetched with huggingface_hub's own client, which resumes a dropped transfer from where it
stopped (HTTP Range), then checked against the hash the hub publishes for it: the SHA-256 of an LFS
file (the weights), the git blob SHA-1 of any other. A file that does not match is deleted and the
install stops naming it; nothing is imported until every file matched.

Files land in `<store>/.downloads/<owner>--<name>/`, kept after a failure so the same command resumes
(finished files are checked and not fetched again), removed once the model is imported.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline import config
from pipeline.errors import TestimonyError
from pipeline.hashing import file_sha256

DOWNLOADS = ".downloads"


class HubError(TestimonyError):
    """A download failed or a file did not match what the hub published; nothing was installed."""


@dataclass(frozen=True)
class Published:
    """One file as the hub lists it: its path in the repository, size and published hash."""

    path: str
    size: int | None
    sha256: str | None  # LFS files
    blob_sha1: str | None  # every other file: git's blob id

    def matches(self, local: Path) -> tuple[bool, str, str]:
        """(whether `local` is this file, the published hash, the local one)."""
        if self.sha256:
            now = file_sha256(local)
            return now == self.sha256, self.sha256, now
        now = git_blob_sha1(local)
        return now == self.blob_sha1, self.blob_sha1 or "?", now


def git_blob_sha1(path: Path) -> str:
    """Git's id of a file's content: SHA-1 of `blob <size>\\0` then the bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


@contextmanager
def online() -> Iterator[None]:
    """The hub client allowed to connect for this block only (every entry point sets HF_HUB_OFFLINE=1,
    which huggingface_hub reads once, at import)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def staging_dir(repo_id: str) -> Path:
    return config.models_dir() / DOWNLOADS / repo_id.replace("/", "--")


def published_files(repo_id: str, revision: str | None = None) -> tuple[str, list[Published]]:
    """(the commit, every file of the repository with its published hash)."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    files = [Published(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None, s.blob_id) for s in info.siblings or []]
    return info.sha, files


def _fetch(repo_id: str, commit: str, file: Published, folder: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, file.path, revision=commit, local_dir=folder, endpoint=endpoint()))


def download(repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """Every file of `repo_id` in its staging folder, each checked; returns (folder, commit)."""
    folder = staging_dir(repo_id)
    folder.mkdir(parents=True, exist_ok=True)
    where = f"{endpoint()}/{repo_id}"
    try:
        with online():
            commit, files = published_files(repo_id, revision)
            for file in files:
                local = folder / file.path
                if not (local.is_file() and file.matches(local)[0]):  # else finished by an earlier attempt
                    _check(file, _fetch(repo_id, commit, file, folder), where)
    except HubError:
        raise
    except Exception as exc:  # no route to the hub, refused, dropped past the client's retries, disk full
        raise HubError(f"could not download {repo_id} from {where} ({type(exc).__name__}: {exc}). Nothing was "
                       f"installed; run the same command again to resume (finished files are kept in {folder})") \
            from None
    return folder, commit


def _check(file: Published, local: Path, where: str) -> None:
    ok, published, now = file.matches(local)
    if not ok:
        local.unlink(missing_ok=True)
        raise HubError(f"{where}: {file.path} is not the file the hub publishes (published {published}, "
                       f"received {now}); it was deleted and nothing was installed. If it happens again, the "
                       "hub or mirror serves altered files: do not use it")


def discard(repo_id: str) -> None:
    """The staging folder goes once its model is imported."""
    shutil.rmtree(staging_dir(repo_id), ignore_errors=True)
    if (parent := config.models_dir() / DOWNLOADS).is_dir() and not any(parent.iterdir()):
        parent.rmdir()
