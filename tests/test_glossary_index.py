"""Glossary flagging through the index finds exactly what comparing every entry with every window found.

`reference_flag` is the code before the index (pure Python, a pair at a time), kept here only as the
oracle; random names and texts over a small alphabet make near-misses, inflections, exact names,
fragments and multi-word names common, so every branch of the rule is exercised many times.
"""

from __future__ import annotations

import random

import pytest

from pipeline.stages import glossary
from pipeline.stages.glossary import WORD, Glossary, _allowed, _fold
from pipeline.transcript import Segment, Source, Transcript


def reference_distance(a: str, b: str, limit: int) -> int:
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


def reference_near_misses(text: str, entry: str) -> list[str]:
    target = _fold(entry)
    size = len(target.split())
    words = [(m.group(), _fold(m.group())) for m in WORD.finditer(text)]
    found = []
    for n in range(len(words) - size + 1):
        span = words[n:n + size]
        heard = " ".join(w for _, w in span)
        if heard.startswith(target) or target.startswith(heard) and len(heard) < len(target) - _allowed(target):
            continue
        stem = heard[:len(target) + 1] if len(heard) > len(target) + 1 else heard
        if min(reference_distance(heard, target, _allowed(target)),
               reference_distance(stem, target, _allowed(target))) <= _allowed(target):
            found.append(" ".join(w for w, _ in span))
    return found


def reference_flag(texts: list[str], entries: tuple[str, ...]) -> list[list[dict]]:
    return [[{"heard": heard, "glossary": entry} for entry in entries for heard in reference_near_misses(text, entry)]
            for text in texts]


def _flagged(texts: list[str], entries: tuple[str, ...]) -> list[list[dict]]:
    segments = [Segment(n, float(n), n + 0.5, text) for n, text in enumerate(texts)]
    transcript = Transcript(Source("v.mp4", "0" * 64, 1, 9.0, {}), "kk", "kk", 1.0, {}, segments)
    glossary.flag(transcript, Glossary(entries))
    for seg in transcript.segments:
        assert (glossary.GLOSSARY_MATCH in seg.flags) == bool(seg.suggestions)
    return [seg.suggestions or [] for seg in transcript.segments]


def _random_case(seed: int) -> tuple[list[str], tuple[str, ...]]:
    rng = random.Random(seed)
    letters = "абқаеіұүrstÜüa" if seed % 2 else "абвгдеқә"

    def word(lo: int, hi: int) -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))

    def variant(name: str) -> str:
        chars = list(name)
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(chars))
            op = rng.choice(("swap", "drop", "add"))
            if op == "swap":
                chars[i] = rng.choice(letters)
            elif op == "drop" and len(chars) > 1:
                del chars[i]
            else:
                chars.insert(i, rng.choice(letters))
        said = "".join(chars)
        return rng.choice((said, said + word(1, 4), said.upper(), said[:rng.randint(1, len(said))]))

    entries = tuple(dict.fromkeys(" ".join(word(1, 13) for _ in range(rng.choice((1, 1, 2, 3))))
                                  for _ in range(rng.randint(1, 40))))
    texts = []
    for _ in range(30):
        parts = [word(1, 9) for _ in range(rng.randint(0, 12))]
        for _ in range(rng.randint(0, 3)):
            parts.insert(rng.randint(0, len(parts)), variant(rng.choice(entries)))
        texts.append(rng.choice((" ", ", ", " - ")).join(parts))
    return texts, entries


@pytest.mark.parametrize("seed", range(12))
def test_the_index_finds_what_every_pair_found(seed):
    texts, entries = _random_case(seed)
    expected = reference_flag(texts, entries)
    assert _flagged(texts, entries) == expected
    assert sum(map(len, expected)) > 0, "the random case holds near-misses to find"


def test_edge_entries_and_texts():
    entries = ("Или", "Қарағанды", "Abdurehim Heyit", "—", "\u0301", "Ürümchi", "ÜRÜMCHI", "a b c d")
    texts = ["", "—", "Мен Карағандыда тұрдым, Қарағандыда да", "Abdurahim Heyt sang; Abdurehim Heyit sang",
             "taken to Urumchi, then Urumçi", "ил ли или", "a b c e", "Қарағандыдағылардан"]
    assert _flagged(texts, entries) == reference_flag(texts, entries)
    assert _flagged(texts, entries)[2] == [{"heard": "Карағандыда", "glossary": "Қарағанды"}]
    assert glossary.distance("лагерь", "лагер", 1) == 1 and glossary.distance("абвгд", "", 2) == 3
