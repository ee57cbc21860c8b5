"""Loops cut, not kept: a repetition that survived the temperature fallback is cut to what was heard once.

Whisper, unsure of a short or noisy stretch, can fall into a loop (`үй үй үй …` fifty times over a
2 s clip). The fallback retries such windows (their compression ratio is too high); what still loops
afterwards used to stay in the text, the renderings and the translation, flagged
`possible_hallucination`, for a reviewer to delete. Now the loop at a segment's end is cut back to
its first occurrence: the segment keeps the flag, and `cut` records what was removed (text, words,
how often the n-gram ran), so review can restore it: `text + cut.text`, `words + cut.words`.
The segment's times stay the decoded ones: the span still points at the audio a person should hear.

Only what is clearly a machine loop is cut: the segment's own compression ratio is above Whisper's
threshold (so the text is highly repetitive), and it ends in at least `MIN_REPEATS` consecutive
occurrences of one n-gram (up to `MAX_NGRAM` words; the last one may be cut short by the window's
end). A witness saying `жоқ жоқ жоқ` in a sentence is short text that compresses badly: never cut.
A loop with no spaces in it (`去去去…`, `C.C.C.…`: Whisper writes such things too) is looked for in
characters when no word loop is found, and needs `MIN_CHAR_REPEATS` (an `ааа` of hesitation is not one).
"""

from __future__ import annotations

import re
from dataclasses import asdict

from pipeline.transcript import Segment, Word

MIN_REPEATS = 3
MAX_NGRAM = 12
MIN_CHAR_REPEATS = 8
MAX_CHAR_NGRAM = 20
_TOKEN = re.compile(r"\S+")
_EDGES = re.compile(r"^\W+|\W+$")


def _key(token: str) -> str:
    """A token as loops repeat it: case and surrounding punctuation do not matter (`Өнер,` = `өнер`)."""
    return _EDGES.sub("", token.casefold()) or token


def loop_start(keys: list[str], min_repeats: int = MIN_REPEATS, max_n: int = MAX_NGRAM) -> tuple[int, int] | None:
    """(index where the repeats start, occurrences) of the earliest loop that runs to the end of
    `keys`: the n-gram at i..i+n repeats back to back to the end (the last copy may be partial, down
    to a word cut short) at least `min_repeats` times in full. The cut keeps keys up to i+n. None
    when there is no loop."""
    for i in range(len(keys)):
        for n in range(1, min(max_n, (len(keys) - i) // min_repeats) + 1):
            tail = keys[i:]
            if all(_same(tail[j], tail[j % n], last=j == len(tail) - 1) for j in range(n, len(tail))):
                whole = len(tail) if tail[-1] == tail[(len(tail) - 1) % n] else len(tail) - 1
                return i + n, whole // n
    return None


def _same(key: str, expected: str, *, last: bool) -> bool:
    """A copy of the loop's key; the very last may stop short (`қа` for `қалің`): the window ended."""
    return key == expected or (last and bool(key) and expected.startswith(key))


def _found(text: str) -> tuple[int, int] | None:
    """(character offset where the repeats start, occurrences): a loop of words, else of characters."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if found := loop_start([_key(text[a:b]) for a, b in spans]):
        return spans[found[0]][0], found[1]
    if found := loop_start(list(text.casefold()), MIN_CHAR_REPEATS, MAX_CHAR_NGRAM):
        return found
    return None


def cut_loop(seg: Segment) -> Segment:
    """`seg` with a looping tail cut off and recorded in `seg.cut`; unchanged when it has none."""
    found = _found(seg.text)
    if found is None:
        return seg
    offset, repeats = found
    kept = seg.text[:offset].rstrip()
    kept_words, cut_words = _split_words(seg, offset)
    seg.cut = {"text": seg.text[len(kept):], "words": cut_words, "repeats": repeats,
               "reason": "repetition loop after the temperature fallback"}
    seg.text, seg.words = kept, kept_words
    return seg


def _split_words(seg: Segment, offset: int) -> tuple[list[Word] | None, list[dict] | None]:
    """The segment's words before and after character `offset` of its text (as dicts for the cut).

    Whisper's words, joined, are the segment's text with a leading space; when they are not (an
    engine that splits differently), the words are shared out in proportion to the text kept."""
    if seg.words is None:
        return None, None
    joined = "".join(w.word for w in seg.words)
    if joined.strip() == seg.text:
        position, starts = -(len(joined) - len(joined.lstrip())), []
        for w in seg.words:
            starts.append(position + len(w.word) - len(w.word.lstrip()))
            position += len(w.word)
        keep = sum(start < offset for start in starts)
    else:
        keep = max(1, round(len(seg.words) * offset / max(1, len(seg.text))))
    return seg.words[:keep], [asdict(w) for w in seg.words[keep:]]
