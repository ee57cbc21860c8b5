"""What every document says about one testimony, read once from its bundle, its revisions and its custody log.

The writers (`word`, `sheets`, `ohms`) only lay this out: each reads the same rows, the same revision and
the same custody summary, so a DOCX and a spreadsheet of one bundle can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.archive import custody
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.archive.formats import speaker_name
from pipeline.archive.viewer import INDEX
from pipeline.transcript import Segment, Transcript

_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # never valid in XML 1.0 (DOCX, XLSX, OHMS)


def right_to_left(text: str) -> bool:
    """Whether most letters are Arabic script (Uyghur): the same rule as the viewer's `direction()`."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and 2 * sum(bool(_ARABIC.match(c)) for c in letters) > len(letters)


def xml_safe(text: str | None) -> str:
    """Text without the control characters XML 1.0 cannot hold (a hostile or broken segment)."""
    return _CONTROL.sub("", text or "")


def seconds(value: float) -> str:
    """Seconds as the viewer's `#t=` takes them: up to milliseconds, no trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def clock(value: float) -> str:
    """H:MM:SS.s, as `testimony get` and the Prefect artifact show times."""
    whole = int(value)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}.{int(value * 10) % 10}"


@dataclass(frozen=True)
class Row:
    """One segment as a document shows it."""

    segment: int
    start: float
    end: float
    speaker: str | None
    original: str
    english: str | None
    flags: tuple[str, ...]
    checked: bool

    @property
    def marked(self) -> bool:
        """A person should look again: the machine flagged it, or nobody has checked it yet."""
        return bool(self.flags) or not self.checked

    @property
    def reasons(self) -> list[str]:
        return [f.replace("_", " ") for f in self.flags] + ([] if self.checked else ["unchecked"])

    @property
    def link(self) -> str:
        """The moment in the bundle's viewer, relative to the bundle folder."""
        return f"{INDEX}#t={seconds(self.start)}"


@dataclass(frozen=True)
class Custody:
    """The custody log in a line: when the original arrived, how many events, the last publish or revise."""

    arrival: str | None
    events: int
    last: str | None  # "publish 2026-12-01T..." / "revise 2026-12-02T... (revision 2)"

    def summary(self) -> str:
        if not self.events:
            return "no custody log"
        return (f"arrived {self.arrival or 'not recorded'}; {self.events} events; "
                f"last {self.last or 'publish not recorded'}")


@dataclass(frozen=True)
class Record:
    """One testimony, everything a document names."""

    bundle_id: str
    bundle_name: str
    file_name: str
    sha256: str
    language: str
    duration: float | None
    asr: str
    translation: str
    revision: int
    revision_sha256: str
    custody: Custody
    rows: list[Row]


def _row(transcript: Transcript, seg: Segment) -> Row:
    english = seg.text if transcript.language == "en" else seg.translation
    return Row(seg.id, seg.start, seg.end, speaker_name(transcript, seg), xml_safe(seg.text),
               xml_safe(english) if english else None, tuple(seg.standing_flags()), bool(seg.checked))


def _asr(models: dict) -> str:
    asr = models.get("asr") or {}
    name = " ".join(str(x) for x in (asr.get("name"), asr.get("engine")) if x) or "unknown"
    return f"{name}, sha256 {asr['sha256']}" if asr.get("sha256") else name


def _translation(transcript: Transcript) -> str:
    """Who made the English: the machine's route, and how many segments' English a person wrote or edited."""
    route = (transcript.models.get("translation") or {}).get("route")
    people = sum(seg.english_source in ("edited", "written") for seg in transcript.segments if seg.translation)
    if route:
        machine = " → ".join(route)
    elif transcript.language == "en":
        return "none (English speech)"
    else:
        machine = "none by machine" if people else "none (untranslated)"
    return f"{machine}; {people} of {len(transcript.segments)} segments' English by a person" if people else machine


def _custody(archive: Path, sha256: str) -> Custody:
    events = custody.read(archive, sha256)
    arrival = next((e.get("time") for e in events if e.get("event") == "arrival"), None)
    last = None
    for event in events:
        if event.get("event") == "revise":
            last = f"revise {event.get('time')} (revision {event.get('revision')})"
        elif event.get("event") == "stage" and event.get("name") == "publish":
            last = f"publish {event.get('time')}"
    return Custody(arrival, len(events), last)


def read(bundle: Path) -> Record:
    """The record of a published bundle (its newest revision; revision 0 when nobody reviewed it)."""
    from pipeline.archive import revisions

    transcript = Transcript.load(bundle / TRANSCRIPT)
    newest = revisions.newest(bundle)
    return Record(transcript.id, bundle.name, transcript.source.file_name, transcript.source.sha256,
                  transcript.language or "und", transcript.source.duration, _asr(transcript.models),
                  _translation(transcript), newest.number, newest.sha256,
                  _custody(bundle.parent, transcript.source.sha256),
                  [_row(transcript, seg) for seg in transcript.segments])
