"""Training pairs from the archive: every checked segment of a language, its audio cut from the kept original.

Only the newest revision counts (it is what the reviewers stand behind), and only bundles whose original
the archive kept: audio cut from anything else could not be shown to be the witness's own recording.
The split is by recording, so no voice or room is on both sides and the held-out figures mean what they
say: how the model does on recordings it never heard.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.archive import catalog, originals
from pipeline.archive import revisions as archive_revisions
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.errors import TestimonyError
from pipeline.stages.media import SAMPLE_RATE, extract_audio, load_wav, probe
from pipeline.transcript import read_json


class AdaptError(TestimonyError):
    """Adaptation cannot start or go on; the message says what to do."""


@dataclass
class Pair:
    """One checked segment: its audio (16 kHz mono float32) and the text a person checked."""

    recording: str  # the original's SHA-256
    segment: int
    start: float
    end: float
    text: str
    audio: np.ndarray = field(repr=False)


@dataclass
class Recording:
    """One bundle's contribution: the revision learned from (number and hash) and its checked pairs."""

    sha256: str
    file_name: str
    revision: int
    revision_sha256: str
    pairs: list[Pair]

    def cite(self) -> dict:
        """What the model's record says about this recording: never its text."""
        return {"sha256": self.sha256, "file_name": self.file_name, "revision": self.revision,
                "revision_sha256": self.revision_sha256, "segments": len(self.pairs),
                "seconds": round(sum(p.end - p.start for p in self.pairs), 3)}


def _checked(segments: list[dict]) -> list[dict]:
    return [s for s in segments if s.get("checked") and str(s.get("text") or "").strip() and s["end"] > s["start"]]


def _audio(kept: Path) -> np.ndarray:
    """The whole original as 16 kHz mono, by the same ffmpeg extraction a run uses."""
    with tempfile.TemporaryDirectory(prefix="testimony-adapt-") as tmp:
        extracted = extract_audio(probe(kept), Path(tmp) / "audio.wav")
        return load_wav(extracted.wav_path)


def _cut(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    return audio[int(round(start * SAMPLE_RATE)):int(round(end * SAMPLE_RATE))].copy()


def recording(archive: Path, bundle: Path) -> Recording | None:
    """The bundle's checked segments with their audio, or None (nothing checked, or no kept original)."""
    newest = archive_revisions.newest(bundle)
    segments = _checked(newest.segments)
    source = read_json(bundle / TRANSCRIPT)["source"]
    kept = originals.find_kept(archive, source["sha256"])
    if not segments or kept is None:
        return None
    audio = _audio(kept)
    pairs = [Pair(source["sha256"], int(s["id"]), float(s["start"]), float(s["end"]), str(s["text"]).strip(),
                  _cut(audio, s["start"], s["end"])) for s in segments]
    return Recording(source["sha256"], source.get("file_name", ""), newest.number, newest.sha256, pairs)


def collect(archive: str | Path, language: str) -> list[Recording]:
    """Every recording of `language` with checked segments and a kept original, in SHA-256 order."""
    archive = Path(archive)
    found = []
    for video in sorted(catalog.list_videos(archive), key=lambda v: v.sha256):
        if video.language != language or not video.bundle or not (archive / video.bundle / TRANSCRIPT).is_file():
            continue
        if (rec := recording(archive, archive / video.bundle)) is not None:
            found.append(rec)
    return found


def split(recordings: list[Recording], held_out: float, seed: int) -> tuple[list[Recording], list[Recording]]:
    """(train, held out), whole recordings on each side; the same seed gives the same split.

    At least one recording is held out and at least one trained on, so both figures exist.
    """
    if len(recordings) < 2:
        raise AdaptError(f"adaptation needs checked segments in at least 2 recordings (one to learn from, one "
                         f"to score on); this archive has {len(recordings)} for this language with a kept "
                         "original. Check more recordings in the workspace, then run again.")
    if not 0 < held_out < 1:
        raise AdaptError(f"--held-out {held_out}: give a fraction between 0 and 1, e.g. 0.2")
    order = sorted(recordings, key=lambda r: hashlib.sha256(f"{seed}:{r.sha256}".encode()).hexdigest())
    random.Random(seed).shuffle(order)
    count = min(len(order) - 1, max(1, round(len(order) * held_out)))
    held = sorted(order[:count], key=lambda r: r.sha256)
    train = sorted(order[count:], key=lambda r: r.sha256)
    return train, held
