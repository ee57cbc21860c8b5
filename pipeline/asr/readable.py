"""Sentence-sized segments from a stream of unpunctuated words (what CTC models give).

A CTC model writes lower-case words with no punctuation, so there is no sentence end to cut at.
A reader, the editor and translation still want sentence-sized pieces, and a speaker's pauses are
where sentences usually end: cut where the silence between two words exceeds `PAUSE`, and a piece
still longer than `MAX_SECONDS` or `MAX_WORDS` is cut again at its longest pause (of equal ones, the
nearest the middle, so steady speech is halved rather than shaved a word at a time), until every
piece fits. Nothing depends on anything but the word times, so the same
words always give the same segments. Punctuation and case are not guessed.
"""

from __future__ import annotations

from typing import Any

PAUSE = 0.5  # seconds of silence between two words that end a segment
MAX_SECONDS = 20.0
MAX_WORDS = 30


def sentences(words: list[dict[str, Any]], pause: float = PAUSE, max_seconds: float = MAX_SECONDS,
              max_words: int = MAX_WORDS) -> list[list[dict[str, Any]]]:
    """`words` (dicts with start and end, in order) grouped into segments: cut at pauses, then capped."""
    runs: list[list[dict[str, Any]]] = []
    for word in words:
        if runs and word["start"] - runs[-1][-1]["end"] <= pause:
            runs[-1].append(word)
        else:
            runs.append([word])
    return [piece for run in runs for piece in _capped(run, max_seconds, max_words)]


def _capped(run: list[dict[str, Any]], max_seconds: float, max_words: int) -> list[list[dict[str, Any]]]:
    """`run` as is when it fits, else split at its longest pause and each half capped in turn."""
    if len(run) <= max_words and run[-1]["end"] - run[0]["start"] <= max_seconds or len(run) < 2:
        return [run]
    middle = len(run) / 2
    cut = max(range(1, len(run)), key=lambda i: (round(run[i]["start"] - run[i - 1]["end"], 3), -abs(i - middle)))
    return _capped(run[:cut], max_seconds, max_words) + _capped(run[cut:], max_seconds, max_words)
