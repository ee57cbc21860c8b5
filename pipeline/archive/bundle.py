"""The bundle folder: transcript.json, its renderings, the viewer page and a manifest, published atomically.

Everything is written into a hidden staging folder in the archive and renamed into place at the end,
so a crash never leaves a bundle that looks complete; a re-run replaces the old bundle in one step.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import unicodedata
from pathlib import Path

from pipeline import config, failpoints
from pipeline.archive.formats import renderings
from pipeline.archive.locks import bundle_lock
from pipeline.archive.viewer import INDEX, linked_video, render_viewer, video_href
from pipeline.errors import TestimonyError
from pipeline.hashing import file_sha256
from pipeline.transcript import Transcript, read_json

TRANSCRIPT = "transcript.json"
MANIFEST = "manifest.json"
REVISIONS = "revisions"  # a review's revision files (`pipeline.archive.revisions`)


def slug(file_name: str, limit: int = 40) -> str:
    """A readable, filesystem-safe slug; keeps Cyrillic and Arabic letters, drops the rest."""
    stem = unicodedata.normalize("NFC", Path(file_name).stem)
    words = re.findall(r"\w+", stem)
    return "-".join(words)[:limit].strip("-_").lower()


def bundle_name(transcript: Transcript) -> str:
    tail = slug(transcript.source.file_name)
    return f"{transcript.id}-{tail}" if tail else transcript.id


def find_bundle(archive: Path, sha256: str) -> Path | None:
    """The published bundle for a video, whatever slug it carries."""
    if not archive.is_dir():
        return None
    prefix = sha256[:12]
    for entry in archive.iterdir():
        if (entry.name == prefix or entry.name.startswith(prefix + "-")) and (entry / TRANSCRIPT).is_file():
            return entry
    return None


def _write(path: Path, text: str, mode: int = config.DEFAULT_FILE_MODE) -> None:
    """Write `text` to a new file created with `mode` (set explicitly: the umask does not weaken or widen it)."""
    _write_bytes(path, text.encode("utf-8"), mode)


class ReviewedBundleError(TestimonyError):
    """A machine run would replace a bundle a person has reviewed."""


def write_bundle(archive: str | Path, transcript: Transcript, *, video: str | Path | None = None,
                 revisions: dict[str, bytes | Path] | None = None) -> Path:
    """Render and publish the bundle for `transcript` under `archive`; returns its folder.

    `video` is the source file: the viewer (index.html) links it relative to the published folder.
    `revisions` are the review's revision files (`revisions/NNNN.json` -> bytes, or the path of an
    earlier bundle's file, linked rather than copied), published in the same rename as the rest;
    without them, a bundle a person has reviewed is never replaced.
    """
    archive = config.private_dirs(archive)
    with bundle_lock(archive, transcript.source.sha256):  # re-entered when the caller (a save) holds it
        return _write_locked(archive, transcript, video, revisions)


def _write_locked(archive: Path, transcript: Transcript, video: str | Path | None,
                  revisions: dict[str, bytes] | None) -> Path:
    """`write_bundle` under the video's bundle lock: "not reviewed" is checked and the old bundle
    retired with no save able to land in between."""
    mode = config.file_mode()
    final = archive / bundle_name(transcript)
    tidy_after_kill(archive, transcript.id)
    failpoints.reached("publish:begin")
    previous = find_bundle(archive, transcript.source.sha256)
    if revisions is None and previous is not None:
        refuse_if_reviewed(previous)
    if video is None and previous is not None:
        video = linked_video(previous)  # a rewrite without the source (a retranslation) keeps the link
    staging = archive / f".{transcript.id}.partial-{_call_tag()}"
    staging.mkdir(mode=config.dir_mode(mode))
    os.chmod(staging, config.dir_mode(mode))  # owner-only before anything is written into it
    try:
        files = {TRANSCRIPT: transcript.to_json(), **renderings(transcript),
                 INDEX: render_viewer(transcript, video_href(video, final))}
        for name, text in files.items():
            _write(staging / name, text, mode)
        for name, data in (revisions or {}).items():
            (staging / name).parent.mkdir(mode=config.dir_mode(mode), exist_ok=True)
            if isinstance(data, Path):
                _link(data, staging / name, mode)
            else:
                _write_bytes(staging / name, data, mode)
            files[name] = name
        manifest = {
            "transcript_id": transcript.id,
            "source_sha256": transcript.source.sha256,
            "files": {name: file_sha256(staging / name) for name in sorted(files)},
        }
        _write(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n", mode)
        failpoints.reached("publish:staged")
        _publish(staging, final, previous)
        failpoints.reached("publish:renamed")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def reviewed(bundle: Path) -> bool:
    """Whether a person has saved a revision of this bundle."""
    return (bundle / REVISIONS / "0001.json").is_file()


def refuse_if_reviewed(bundle: Path) -> None:
    """A person's revisions are never replaced by a machine run; say what to do instead."""
    if reviewed(bundle):
        raise ReviewedBundleError(
            f"{bundle.name} has been reviewed by a person: a new machine run or translation would replace "
            "their corrections, so it was not written. The reviewed bundle is unchanged. To run the video "
            "again anyway, move that bundle folder out of the archive first (its revisions go with it, "
            "`testimony export` keeps a verifiable copy), then run again.")


def _write_bytes(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with open(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _link(source: Path, target: Path, mode: int) -> None:
    """An earlier revision, unchanged for good, as a hard link: a save writes one new revision file,
    not a copy of every earlier one (a long review would write O(n²) bytes). Where the file system
    has no hard links (FAT, some network shares) the bytes are copied."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        _write_bytes(target, source.read_bytes(), mode)
        return
    if stat.S_IMODE(target.lstat().st_mode) != mode:
        os.chmod(target, mode)


def tidy_after_kill(archive: Path, prefix: str = "") -> None:
    """Undo what a publish killed half way left: its staging folder goes; a retired bundle whose
    replacement never landed is put back, since it is then the only copy.

    Every publish holds its video's bundle lock, so whatever is left of a video whose lock we hold is
    a dead writer's, whichever process or thread it was (no process id is trusted: a restarted
    container gives the same ids again). With `prefix` (a video's id) the caller holds that lock;
    without, each video with leftovers is tidied under its own lock, taken here.
    """
    if prefix:
        _tidy_video(archive, prefix)
        return
    for vid in sorted({entry.name[1:13] for entry in _leftovers(archive, "")}):
        with bundle_lock(archive, vid):
            _tidy_video(archive, vid)


def _leftovers(archive: Path, prefix: str) -> list[Path]:
    """Staging and retired folders of publishes, of the videos whose id starts with `prefix`."""
    if not archive.is_dir():
        return []
    return [p for pattern in (f".{prefix}*.partial-*", f".{prefix}*.old-*") for p in archive.glob(pattern)
            if p.is_dir() and re.fullmatch(r"[0-9a-f]{12}", p.name[1:13])]


def _tidy_video(archive: Path, vid: str) -> None:
    for stale in archive.glob(f".{vid}*.partial-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    for retired in sorted(archive.glob(f".{vid}*.old-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        if not retired.is_dir():
            continue
        name = retired.name[1:].rsplit(".old-", 1)[0]
        if find_bundle(archive, source_of(retired).get("sha256") or name[:12]) is None:
            os.replace(retired, archive / name)
        else:
            shutil.rmtree(retired, ignore_errors=True)


def _call_tag() -> str:
    """Names a staging or retired folder for one call: the process id (for a person reading the folder)
    and a random token, so two calls of one process (threads of `serve`) never share a name."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def source_of(bundle: Path) -> dict:
    """The `source` a bundle folder's transcript names (file name, SHA-256, ...), {} when unreadable:
    what tidying, repair and the commands need to tell whose folder it is."""
    try:
        source = read_json(bundle / TRANSCRIPT)["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return source if isinstance(source, dict) else {}



def _publish(staging: Path, final: Path, previous: Path | None) -> None:
    """Swap the staged folder into place; the old bundle is moved aside first, then removed."""
    retired = None
    if previous is not None:
        retired = previous.with_name(f".{previous.name}.old-{_call_tag()}")
        os.replace(previous, retired)
        failpoints.reached("publish:retired")
    try:
        if final.exists():  # a stray folder under the same name without a transcript
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        if retired is not None:  # put the old bundle back where readers look for it
            os.replace(retired, previous)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def files_problems(bundle: Path) -> tuple[str | None, list[str]]:
    """(the source SHA-256 the bundle names, problems of its files against manifest.json)."""
    name = bundle.name
    try:
        manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
        sha256 = manifest.get("source_sha256")
    except FileNotFoundError:
        return None, [f"{name}/{MANIFEST}: missing: the bundle's files cannot be checked"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, [f"{name}/{MANIFEST}: unreadable ({exc})"]
    problems = []
    for file, digest in sorted(listed.items()):
        path = bundle / file
        if not path.is_file():
            problems.append(f"{name}/{file}: missing")
        elif (now := file_sha256(path)) != digest:
            problems.append(f"{name}/{file}: changed (manifest sha256 {digest}, now {now})")
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if not path.is_dir() and rel not in listed and rel != MANIFEST:
            problems.append(f"{name}/{rel}: extra file, not in the manifest")
    try:
        source = read_json(bundle / TRANSCRIPT)["source"]["sha256"]
        if source != sha256:
            problems.append(f"{name}/{TRANSCRIPT}: source.sha256 {source} differs from the manifest's "
                            f"source_sha256 {sha256}")
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a missing or changed transcript is already reported above
    return sha256, problems
