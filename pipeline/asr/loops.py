"""Loops cut, not kept: a repetition that survived the temperature fallback is cut to what was heard once.

Whisper, unsure of a short or noisy stretch, can fall into a loop (`үй үй үй …` fifty times over a
2 s clip). The fallback retries such windows (their compression ratio is too high); what still loops
afterwards used to stay in the text, the renderings and the translation, flagged
`possible_hallucination`, for a reviewer to delete. Now the loop at a segment's end is cut back to
its first occurrence: the segment keeps the flag, and `cut` records what was removed (text, words,
how often the n-gram ran), so review can restore it: `text + " " + cut.text`, `words + cut.words`.
The segment's times stay the decoded ones: the span still points at the audio a person should hear.

Only what is clearly a machine loop is cut: the segment's own compression ratio is above Whisper's
threshold (so the text is highly repetitive), and it ends in at least `MIN_REPEATS` consecutive
occurrences of one n-gram (up to `MAX_NGRAM` words; the last one may be cut short by the window's
end). A witness saying `жоқ жоқ жоқ` in a sentence is short text that compresses badly: never cut.
"""

from __future__ import annotations

import re
from dataclasses import asdict

from pipeline.transcript import Segment, Word

MIN_REPEATS = 3
MAX_NGRAM = 12
_TOKEN = re.compile(r"\S+")
_EDGES = re.compile(r"^\W+|\W+$")


def _key(token: str) -> str:
    """A token as loops repeat it: case and surrounding punctuation do not matter (`Өнер,` = `өнер`)."""
    return _EDGES.sub("", token.casefold()) or token


def loop_start(tokens: list[str]) -> tuple[int, int] | None:
    """(index where the repeats start, occurrences) of the earliest loop that runs to the end of
    `tokens`: the n-gram at i..i+n repeats back to back to the end (the last copy may be partial) at
    least MIN_REPEATS times in full. The cut keeps tokens up to i+n. None when there is no loop."""
    keys = [_key(t) for t in tokens]
    for i in range(len(keys)):
        for n in range(1, min(MAX_NGRAM, (len(keys) - i) // MIN_REPEATS) + 1):
            tail = keys[i:]
            if all(tail[j] == tail[j % n] for j in range(n, len(tail))):
                return i + n, len(tail) // n
    return None


def cut_loop(seg: Segment) -> Segment:
    """`seg` with a looping tail cut off and recorded in `seg.cut`; unchanged when it has none."""
    spans = [m.span() for m in _TOKEN.finditer(seg.text)]
    found = loop_start([seg.text[a:b] for a, b in spans])
    if found is None or found[0] >= len(spans):
        return seg
    keep, repeats = found
    offset = spans[keep][0]
    kept_words, cut_words = _split_words(seg, offset, keep)
    seg.cut = {"text": seg.text[offset:].strip(), "words": cut_words, "repeats": repeats,
               "reason": "repetition loop after the temperature fallback"}
    seg.text, seg.words = seg.text[:offset].rstrip(), kept_words
    return seg


def _split_words(seg: Segment, offset: int, keep: int) -> tuple[list[Word] | None, list[dict] | None]:
    """The segment's words before and after character `offset` of its text (as dicts for the cut).

    Whisper's words, joined, are the segment's text with a leading space; when they are not (an
    engine that splits differently), the first `keep` words are kept, one per text token."""
    if seg.words is None:
        return None, None
    joined = "".join(w.word for w in seg.words)
    if joined.strip() == seg.text:
        position, starts = -(len(joined) - len(joined.lstrip())), []
        for w in seg.words:
            starts.append(position + len(w.word) - len(w.word.lstrip()))
            position += len(w.word)
        keep = sum(start < offset for start in starts)
    return seg.words[:keep], [asdict(w) for w in seg.words[keep:]]
