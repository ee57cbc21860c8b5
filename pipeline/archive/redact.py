"""Which words of a transcript a redaction list names, and the transcript with them replaced.

Some witnesses ask not to be named, and naming a relative still in Xinjiang can endanger them. A
redaction list holds names and phrases in any script, one a line (`#` starts a comment). Text is
matched after search's own folding (`catalog.fold`: NFKC, no marks or tatweel) in one case, word by
word, and a word that starts with a listed word is taken for it inflected: Kazakh and Uyghur add case
and possessive suffixes (`Тұрсынайдың`, `Турсунайنىڭ`). That can redact a longer word that merely
starts with a short name; for publication, removing too much is the safe side. Listed words of two
letters or fewer must match whole.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.archive.catalog import fold
from pipeline.archive.formats import named_speakers
from pipeline.errors import TestimonyError
from pipeline.transcript import GLOSSARY_MATCH, Segment, Transcript

MARK = "[REDACTED]"
MIN_STEM = 3  # listed words shorter than this match only whole
PAD_S = 0.15  # muted on either side of a redacted word: Whisper's word times are approximate


@dataclass(frozen=True)
class RedactList:
    """The entries, each as folded words; and the SHA-256 of the file, which the private record keeps."""

    entries: tuple[tuple[str, ...], ...]
    sha256: str

    @classmethod
    def read(cls, path: str | Path) -> "RedactList":
        path = Path(path)
        try:
            data = path.read_bytes()
            lines = data.decode("utf-8").splitlines()
        except OSError as exc:
            raise TestimonyError(f"{path}: cannot read the redaction list ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise TestimonyError(f"{path}: a redaction list is UTF-8 text, one name or phrase a line") from None
        entries = tuple(dict.fromkeys(words for line in lines if (words := _folded_words(line.split("#", 1)[0]))))
        if not entries:
            raise TestimonyError(f"{path}: the redaction list names nothing (one name or phrase a line)")
        return cls(entries, hashlib.sha256(data).hexdigest())


def _is_word_char(ch: str) -> bool:
    """Letters, digits and the marks, joiners and tatweel written inside Arabic-script and Cyrillic words."""
    return ch.isalnum() or ch == "_" or unicodedata.category(ch) in ("Mn", "Mc", "Me", "Cf") or ch == "\u0640"


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word in `text`, marks included, so a folded word maps back to its letters."""
    spans, start = [], None
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            start = i if start is None else start
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _folded(word: str) -> str:
    return fold(word).casefold()


def _folded_words(text: str) -> tuple[str, ...]:
    return tuple(w for s, e in word_spans(text) if (w := _folded(text[s:e])))


def _word_matches(heard: str, listed: str) -> bool:
    return heard == listed or (len(listed) >= MIN_STEM and heard.startswith(listed))


def match_spans(text: str | None, redact: RedactList) -> list[tuple[int, int]]:
    """Character spans of `text` that a listed name or phrase covers (inflected forms included)."""
    if not text:
        return []
    spans = word_spans(text)
    heard = [_folded(text[s:e]) for s, e in spans]
    found = []
    for i in range(len(spans)):
        for entry in redact.entries:
            window = heard[i:i + len(entry)]
            if len(window) == len(entry) and all(map(_word_matches, window, entry)):
                found.append((spans[i][0], spans[i + len(entry) - 1][1]))
    return _merged(found)


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def redact_text(text: str | None, redact: RedactList) -> str | None:
    """`text` with every match replaced by the mark; None stays None."""
    if text is None:
        return None
    for start, end in reversed(match_spans(text, redact)):
        text = text[:start] + MARK + text[end:]
    return text


def _word_times(seg: Segment, spans: list[tuple[int, int]]) -> list[tuple[float, float]] | None:
    """Times of the words of `seg` that overlap `spans`, or None when the words do not spell its text."""
    if not seg.words:
        return None
    times, cursor = [], 0
    for word in seg.words:
        token = word.word.strip()
        at = seg.text.find(token, cursor) if token else cursor
        if at < 0:
            return None
        end = at + len(token)
        if any(at < s_end and s_start < end for s_start, s_end in spans):
            times.append((word.start, word.end))
        cursor = end
    return times


def muted_times(seg: Segment, redact: RedactList) -> list[tuple[float, float]]:
    """The stretches of `seg`'s audio that say a listed name.

    Matched words are muted by their own times (padded). When the segment's words cannot place a
    match (a reviewer edited the text, or the name is only in the English), the whole segment is
    muted: the audio must not say what the text withholds.
    """
    spans = match_spans(seg.text, redact)
    english = bool(match_spans(seg.translation, redact))
    if not spans and not english:
        return []
    times = _word_times(seg, spans) if spans else None
    if not times:
        return [(seg.start, seg.end)]
    return [(max(0.0, start - PAD_S), end + PAD_S) for start, end in times]


@dataclass(frozen=True)
class Redacted:
    """The public transcript, which segments changed, and the audio to mute (merged, in seconds)."""

    transcript: Transcript
    changed: list[int]
    muted: list[tuple[float, float]]


def _public_segment(seg: Segment, redact: RedactList) -> Segment:
    """The segment as published: redacted text, no word list (the words are the text again) and no
    glossary suggestions (they spell names)."""
    flags = [f for f in seg.flags if f != GLOSSARY_MATCH]
    return replace(seg, text=redact_text(seg.text, redact), translation=redact_text(seg.translation, redact),
                   speaker=redact_text(seg.speaker, redact), words=None, suggestions=None, spellings=None, flags=flags)


def redact_transcript(transcript: Transcript, redact: RedactList) -> Redacted:
    """Every segment with its matches replaced; speaker names (the run's and the sidecar's) redacted too."""
    segments, changed, muted = [], [], []
    for seg in transcript.segments:
        public = _public_segment(seg, redact)
        if (public.text, public.translation) != (seg.text, seg.translation):
            changed.append(seg.id)
        muted += muted_times(seg, redact)
        segments.append(public)
    names = {k: redact_text(v, redact) for k, v in named_speakers(transcript).items()}
    public = replace(transcript, segments=segments, sidecar=None, speaker_names=names, glossary=None, warnings=[])
    return Redacted(public, changed, _merged(muted))
