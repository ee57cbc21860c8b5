"""A glossary of names as the team spells them, and the near-misses of them in a transcript.

Names of people, places, camps and organisations are where ASR fails worst and where a wrong letter
matters most. Entries come from the archive (`<archive>/glossary.txt`, one a line, `#` starts a
comment), the run (`--glossary FILE`) and the video's sidecar (`glossary`). After decoding, a word
(or run of words) within a small edit distance of an entry, but not equal to it, is flagged
`glossary_match` with the entry as its suggestion, for the reviewer to accept: nothing is replaced.
A word that starts with the entry exactly is the name inflected (Kazakh and Uyghur add suffixes:
`Қарағандыда`, in Karaganda) and is no near-miss.

A line may give the name's English spelling after ` = ` (`Тұрсын = Tursun`): the name is the entry as
before, and the spelling is what the English must keep (`pipeline.stages.spellings`). A file without
such lines reads, and is recorded, exactly as before.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from pipeline.errors import TestimonyError
from pipeline.textfold import fold
from pipeline.transcript import GLOSSARY_MATCH, Transcript

FILE = "glossary.txt"
MAX_ENTRIES = 5000
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Glossary:
    entries: tuple[str, ...]
    english: tuple[tuple[str, str], ...] = ()  # (entry, its English spelling) where a line gives one

    def record(self) -> dict:
        """What the transcript keeps: how many entries, the SHA-256 of them in order (with their English
        spellings where given), and the spellings, which the translation reads from there."""
        spelled = dict(self.english)
        lines = [f"{e} = {spelled[e]}" if e in spelled else e for e in self.entries]
        record = {"entries": len(self.entries), "sha256": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()}
        return {**record, "english": spelled} if spelled else record


def _fold(text: str) -> str:
    """Search's own folding (`textfold.fold`: NFKC, no marks or tatweel), in one case."""
    return fold(text).casefold()


def read_entries(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise TestimonyError(f"{path}: a glossary is UTF-8 text, one name a line") from None
    entries = [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    for entry in entries:
        try:
            split_spelling(entry)
        except TestimonyError as bad:
            raise TestimonyError(f"{path}: {bad}") from None
    return entries


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
    pairs = [split_spelling(e) for e in entries if e.strip()]
    unique = tuple(dict.fromkeys(name for name, _ in pairs))
    if len(unique) > MAX_ENTRIES:
        raise TestimonyError(f"the glossary has {len(unique)} entries; at most {MAX_ENTRIES}")
    english = {name: spelling for name, spelling in pairs if spelling}  # the video's own line wins
    return Glossary(unique, tuple(english.items())) if unique else None


def split_spelling(line: str) -> tuple[str, str]:
    """(name, English spelling or "") of one glossary line, `Тұрсын = Tursun` or `Тұрсын`, spaces evened."""
    name, sep, english = line.partition("=")
    name, english = " ".join(name.split()), " ".join(english.split())
    if sep and not (name and english):
        raise TestimonyError(f"glossary line {line.strip()!r}: write the name, then ` = ` and its English "
                             "spelling (`Тұрсын = Tursun`), or the name alone")
    return name, english


def distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or (limit + 1) once it must exceed `limit` (rapidfuzz, in C)."""
    return Levenshtein.distance(a, b, score_cutoff=limit)


def _allowed(entry: str) -> int:
    return _edits(len(entry))


def _edits(length: int) -> int:
    """Edits a near-miss may have: none in a name of 3 letters or fewer (too many words are that close),
    one in a short name, two in a longer, three in a long one."""
    return 0 if length <= 3 else 1 if length <= 5 else 2 if length <= 10 else 3


def _near(heard: str, target: str) -> bool:
    """The rule: `heard` (folded words) nearly spells `target` (a folded entry) without spelling it."""
    allowed = _allowed(target)
    if heard.startswith(target) or target.startswith(heard) and len(heard) < len(target) - allowed:
        return False  # the name itself (perhaps inflected), or a fragment too short to judge
    stem = heard[:len(target) + 1] if len(heard) > len(target) + 1 else heard  # a suffix is not a miss
    return min(distance(heard, target, allowed), distance(stem, target, allowed)) <= allowed


class _Heard:
    """Every distinct window of `size` words in the texts (folded, joined by a space) and where each was
    heard, sorted so the windows that share a prefix sit together and the longer ones come first."""

    def __init__(self, folded: list[list[str]], size: int) -> None:
        self.where: dict[str, list[tuple[int, int]]] = {}  # heard -> (text, first word) of each window
        for t, words in enumerate(folded):
            for n in range(len(words) - size + 1):
                self.where.setdefault(" ".join(words[n:n + size]), []).append((t, n))
        self.sorted = sorted(self.where)
        self.by_length = sorted(self.where, key=len, reverse=True)
        self.lengths = [-len(h) for h in self.by_length]  # ascending, for bisect

    def of_length(self, low: int, high: int) -> list[str]:
        """The windows of `low` to `high` characters."""
        return self.by_length[bisect.bisect_left(self.lengths, -high):bisect.bisect_right(self.lengths, -low)]

    def starting(self, prefix: str, longer_than: int) -> list[str]:
        """The windows longer than `longer_than` characters that start with `prefix`."""
        found = []
        for heard in self.sorted[bisect.bisect_left(self.sorted, prefix):]:
            if not heard.startswith(prefix):
                break
            if len(heard) > longer_than:
                found.append(heard)
        return found


class _Index:
    """The entries grouped by word count and folded length, so every window of an interview is compared
    with all entries of one group in one call to rapidfuzz's `cdist` (C, both cores), and `_near` runs
    only on the few pairs within the allowed edits: seconds, where a pair at a time in Python took
    40 minutes for 5,000 entries over 3 hours. The filter is exact: a near-miss is within the allowed
    edits of the entry either whole or cut to the entry's length + 1 (`_near`'s stem), and both are
    compared here, so `flag` finds what comparing each entry with each window would."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.targets = [_fold(entry) for entry in entries]
        self.groups: dict[tuple[int, int], list[int]] = {}
        for i, target in enumerate(self.targets):
            if target.split():  # an entry that folds to nothing has no words to miss
                self.groups.setdefault((len(target.split()), len(target)), []).append(i)

    def find(self, texts: list[str]) -> list[list[tuple[int, str]]]:
        """Per text: (entry index, the words as written) of each near-miss, by entry then position."""
        written = [WORD.findall(text) for text in texts]
        folded = [[_fold(word) for word in words] for words in written]
        found: list[list[tuple[int, int, int]]] = [[] for _ in texts]
        for size in sorted({size for size, _ in self.groups}):
            heard = _Heard(folded, size)
            for (group_size, length), members in self.groups.items():
                if group_size == size:
                    for window, i in self._pairs(heard, length, members):
                        for t, n in heard.where[window]:
                            found[t].append((i, n, size))
        return [[(i, " ".join(written[t][n:n + size])) for i, n, size in sorted(hits)]
                for t, hits in enumerate(found)]

    def _pairs(self, heard: _Heard, length: int, members: list[int]) -> set[tuple[str, int]]:
        """(window, entry) of the entries in one group (one length) that `_near` accepts."""
        allowed = _edits(length)
        whole = set(heard.of_length(length - allowed, length + allowed))
        stems = {h[:length + 1] for h in heard.of_length(length + 2, 1 << 30)}
        queries = [*whole, *(stems - whole)]
        if not queries:
            return set()
        targets = [self.targets[i] for i in members]
        scores = process.cdist(queries, targets, scorer=Levenshtein.distance, score_cutoff=allowed,
                               dtype=numpy.int8, workers=-1)
        pairs = set()
        for q, m in zip(*numpy.nonzero(scores <= allowed)):
            query, i = queries[q], members[m]
            windows = [query] * (query in whole) + (heard.starting(query, length + 1) if query in stems else [])
            pairs.update((window, i) for window in windows if _near(window, self.targets[i]))
        return pairs


def near_misses(text: str, entry: str) -> list[str]:
    """The spans of `text` (as written there) that nearly spell `entry` without spelling it."""
    return [shown for _, shown in _Index((entry,)).find([text])[0]]


def flag(transcript: Transcript, glossary: Glossary | None) -> Transcript:
    """Flag every segment with a near-miss of an entry, the suggestion beside it; record the glossary."""
    if glossary is None:
        return transcript
    transcript.glossary = glossary.record()
    found = _Index(glossary.entries).find([seg.text for seg in transcript.segments])
    for seg, hits in zip(transcript.segments, found):
        for i, heard in hits:
            seg.flag(GLOSSARY_MATCH)
            seg.suggestions = [*(seg.suggestions or []), {"heard": heard, "glossary": glossary.entries[i]}]
    return transcript
