"""A sidecar beside a video (`NAME.mp4.json`): what the team knows about the testimony, stated once.

It may give `language` (Whisper cannot detect Uyghur: a Uyghur video must be said to be one),
`speakers` (how many), `speaker_names` (`{"S1": "Interviewer"}`), `glossary` (spellings of names),
and any other descriptive field a team records (place and date of recording, consent, a restriction
level). Its content and SHA-256 go into the transcript and the custody log. A sidecar that cannot be
read is an error naming it, and the video waits until it is fixed: guessing what it meant could
decode a testimony in the wrong language.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.errors import TestimonyError

SUFFIX = ".json"
MAX_BYTES = 1 << 20
KNOWN = {"language": str, "speakers": int, "speaker_names": dict, "glossary": list}


class SidecarError(TestimonyError):
    """The sidecar of a video is unreadable or says something impossible; the video waits."""


@dataclass(frozen=True)
class Sidecar:
    path: Path
    sha256: str
    content: dict[str, Any]

    @property
    def language(self) -> str | None:
        return self.content.get("language")

    def record(self) -> dict[str, Any]:
        """What the transcript and custody keep: where it was, its hash, and what it said."""
        return {"file_name": self.path.name, "sha256": self.sha256, "content": self.content}


def sidecar_path(video: Path) -> Path:
    return video.with_name(video.name + SUFFIX)


def is_sidecar(path: Path) -> bool:
    """A file that is some video's sidecar rather than a video itself."""
    return path.name.endswith(SUFFIX)


def read_sidecar(video: str | Path) -> Sidecar | None:
    """The video's sidecar, checked; None when there is none."""
    path = sidecar_path(Path(video))
    data = _read_own_file(path)
    if data is None:
        return None
    if len(data) > MAX_BYTES:
        raise SidecarError(f"{path}: over {MAX_BYTES} bytes; a sidecar holds a few fields, at most 1 MiB")
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SidecarError(f"{path}: not valid UTF-8 JSON ({exc}). Fix or remove it; the video waits") from None
    if not isinstance(content, dict):
        raise SidecarError(f"{path}: expected a JSON object such as {{\"language\": \"ug\"}}; the video waits")
    _check(path, content)
    return Sidecar(path, hashlib.sha256(data).hexdigest(), content)


def _read_own_file(path: Path) -> bytes | None:
    """The sidecar's bytes, read through one descriptor that never follows a symlink (a link planted
    beside a video could point at any file this user can read); None when there is no regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a pipe must not block the open
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SidecarError(f"{path}: a symbolic link; a sidecar is never followed. Put the file itself "
                               "there; the video waits") from None
        raise
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(MAX_BYTES + 1)


def _check(path: Path, content: dict[str, Any]) -> None:
    for key, kind in KNOWN.items():
        if key in content and not isinstance(content[key], kind) or isinstance(content.get(key), bool):
            raise SidecarError(f"{path}: {key!r} must be a {kind.__name__}; the video waits")
    if "language" in content:
        from pipeline.run.options import language_code

        try:
            content["language"] = language_code(content["language"])
        except Exception as exc:
            raise SidecarError(f"{path}: language: {exc}; the video waits") from None
    if "speakers" in content and not 1 <= content["speakers"] <= 20:
        raise SidecarError(f"{path}: speakers must be between 1 and 20; the video waits")
    names = content.get("speaker_names", {})
    if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in names.items()):
        raise SidecarError(f"{path}: speaker_names maps labels to names, e.g. {{\"S1\": \"Interviewer\"}}")
    if not all(isinstance(entry, str) and entry.strip() for entry in content.get("glossary", [])):
        raise SidecarError(f"{path}: glossary is a list of spellings (text), one per name")
    from pipeline.stages.glossary import split_spelling

    for entry in content.get("glossary", []):
        try:
            split_spelling(entry)
        except TestimonyError as bad:
            raise SidecarError(f"{path}: {bad}; the video waits") from None


def apply(options: Any, sidecar: Sidecar | None) -> Any:
    """`options` with the sidecar's language where the run left it to detection (the model and token
    are then that language's route's, unless the run named a model), its number of speakers where the
    run gave none, and its speaker names under the run's own."""
    if sidecar is None:
        return options
    options = options.with_speakers(sidecar.content.get("speakers"), sidecar.content.get("speaker_names", {}))
    if sidecar.language is None or options.asr.language != "auto":
        return options
    from pipeline.store.routes import resolve_run

    named = None if options.follow_routes else options.asr.model
    model, token, engine = resolve_run(sidecar.language, named, options.asr.whisper_token, options.named_engine,
                                      options.archive)
    asr = replace(options.asr, language=sidecar.language, model=model, whisper_token=token, engine=engine)
    return replace(options, asr=asr, follow_routes=False)
