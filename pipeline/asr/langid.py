"""Language identification among the languages an archive expects (`--expect kk,ru,en`).

Whisper's language head scores about a hundred languages. On real, spontaneous Kazakh it often puts
a neighbour first (ka, tr, ky, sk, ...) though Kazakh is close behind: an archive of Kazakh and
Uyghur testimonies never holds Georgian, so the vote is taken among the languages the archive
expects. Both engines average Whisper's probabilities over the voiced windows (`language_totals` in
each engine); `pick` then chooses the most probable expected language. Languages Whisper has no
class for (Uyghur) cannot be detected and are dropped from the choice: they are routed by folder or
sidecar, as without `--expect`. The probability reported is Whisper's own for the language picked,
not renormalised, so a low figure still says the head was unsure.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from pipeline.asr.languages import languages


def detectable(expected: Iterable[str] | None) -> tuple[str, ...]:
    """The expected languages Whisper has a class for, in the order given (ug and the like dropped)."""
    known = languages()
    return tuple(dict.fromkeys(code for code in expected or () if code in known))


def pick(totals: dict[str, float], expected: Sequence[str] | None = None) -> tuple[str | None, float | None]:
    """(language, probability): the most probable of `totals`, among `expected` when any is detectable.

    With no detectable expected language the choice is unrestricted, exactly as before `--expect`
    (ties to the first in Whisper's order). Among expected languages, ties go to the one named first.
    """
    if not totals:
        return None, None
    allowed = [code for code in detectable(expected) if code in totals] or list(totals)
    best = max(allowed, key=lambda code: (totals[code], -allowed.index(code)))
    return best, float(totals[best])
