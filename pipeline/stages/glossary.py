"""A glossary of names as the team spells them, and the near-misses of them in a transcript.

Names of people, places, camps and organisations are where ASR fails worst and where a wrong letter
matters most. Entries come from the archive (`<archive>/glossary.txt`, one a line, `#` starts a
comment), the run (`--glossary FILE`) and the video's sidecar (`glossary`). After decoding, a word
(or run of words) within a small edit distance of an entry, but not equal to it, is flagged
`glossary_match` with the entry as its suggestion, for the reviewer to accept: nothing is replaced.
A word that starts with the entry exactly is the name inflected (Kazakh and Uyghur add suffixes:
`Қарағандыда`, in Karaganda) and is no near-miss.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.archive.catalog import fold
from pipeline.errors import TestimonyError
from pipeline.transcript import GLOSSARY_MATCH, Transcript

FILE = "glossary.txt"
MAX_ENTRIES = 5000
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Glossary:
    entries: tuple[str, ...]

    def record(self) -> dict:
        """What the transcript keeps: how many entries, and the SHA-256 of them in order."""
        text = "\n".join(self.entries).encode("utf-8")
        return {"entries": len(self.entries), "sha256": hashlib.sha256(text).hexdigest()}


def _fold(text: str) -> str:
    """Search's own folding (`catalog.fold`: NFKC, no marks or tatweel), in one case."""
    return fold(text).casefold()


def read_entries(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise TestimonyError(f"{path}: a glossary is UTF-8 text, one name a line") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def load(archive: Path, run_file: str | None, sidecar_entries: list[str] | None) -> Glossary | None:
    """The archive's, the run's and the video's entries, each once, in that order; None when none."""
    entries: list[str] = []
    if (archive / FILE).is_file():
        entries += read_entries(archive / FILE)
    if run_file:
        path = Path(run_file)
        if not path.is_file():
            raise TestimonyError(f"{path}: no such glossary file (--glossary takes a text file, one name a line)")
        entries += read_entries(path)
    entries += list(sidecar_entries or [])
    unique = tuple(dict.fromkeys(" ".join(e.split()) for e in entries if e.strip()))
    if len(unique) > MAX_ENTRIES:
        raise TestimonyError(f"the glossary has {len(unique)} entries; at most {MAX_ENTRIES}")
    return Glossary(unique) if unique else None


def distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, given up (limit + 1) once it must exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _allowed(entry: str) -> int:
    """Edits a near-miss may have: none in a name of 3 letters or fewer (too many words are that close),
    one in a short name, two in a longer, three in a long one."""
    return 0 if len(entry) <= 3 else 1 if len(entry) <= 5 else 2 if len(entry) <= 10 else 3


def near_misses(text: str, entry: str) -> list[str]:
    """The spans of `text` (as written there) that nearly spell `entry` without spelling it."""
    target = _fold(entry)
    size = len(target.split())
    words = [(m.group(), _fold(m.group())) for m in WORD.finditer(text)]
    found = []
    for n in range(len(words) - size + 1):
        span = words[n:n + size]
        heard = " ".join(w for _, w in span)
        if heard.startswith(target) or target.startswith(heard) and len(heard) < len(target) - _allowed(target):
            continue  # the name itself (perhaps inflected), or a fragment too short to judge
        stem = heard[:len(target) + 1] if len(heard) > len(target) + 1 else heard  # a suffix is not a miss
        if min(distance(heard, target, _allowed(target)), distance(stem, target, _allowed(target))) <= _allowed(
                target):
            found.append(" ".join(w for w, _ in span))
    return found


def flag(transcript: Transcript, glossary: Glossary | None) -> Transcript:
    """Flag every segment with a near-miss of an entry, the suggestion beside it; record the glossary."""
    if glossary is None:
        return transcript
    transcript.glossary = glossary.record()
    for seg in transcript.segments:
        for entry in glossary.entries:
            for heard in near_misses(seg.text, entry):
                seg.flag(GLOSSARY_MATCH)
                seg.suggestions = [*(seg.suggestions or []), {"heard": heard, "glossary": entry}]
    return transcript
