"""The glossary as a decoder prompt, within Whisper's budget, and the check that it did not leak.

Whisper spells a name it has been shown far more often as written: the glossary's entries go to the
decoder as text before each 30 s window (openai-whisper `initial_prompt` carried to every window;
faster-whisper `hotwords`, which it puts before every window itself). The prompt holds whole entries
only, as many as fit `PROMPT_TOKENS` of the 223 tokens Whisper allows it, archive entries first.

The known pitfall: over speech that is hard to hear, Whisper may copy the prompt into its output
("Ғұлжа, Құлжа, Тұрсынай, ..."), imitate it (a list of names and near-names between commas where a
sentence was said), or loop on one of its names. A chunk whose text shows any of these is decoded
again without the prompt (`leaked`), and the transcript counts such chunks.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

SEPARATOR = ", "
PROMPT_TOKENS = 150  # of Whisper's 223: a long prompt crowds out what the window itself says
REPEATS = 3  # one glossary name this many times in one segment is a loop, not speech
LIST_COMMAS = 3  # a segment with at least this many commas, on a quarter of its words or more, and
LIST_SHARE = 0.25  # two glossary names in it, reads like the prompt's list rather than a sentence


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """Whisper's multilingual tokenizer, loaded without torch (`asr.languages`)."""
    from pipeline.asr.languages import _tables

    return _tables().get_tokenizer(multilingual=True)


def token_count(text: str) -> int:
    return len(_tokenizer().encode(" " + text.strip()))


def glossary_prompt(entries: tuple[str, ...] | list[str]) -> str | None:
    """The entries, whole and in order, that fit the budget, joined as a list; None without any."""
    kept: list[str] = []
    for entry in entries:
        if token_count(SEPARATOR.join([*kept, entry])) > PROMPT_TOKENS:
            break
        kept.append(entry)
    return SEPARATOR.join(kept) or None


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def leaked(segments: list[dict], prompt: str) -> bool:
    """Whether decoded segments show the prompt instead of speech: two of its entries in its own order
    and separator, a list like it, or one entry repeated `REPEATS` times in a segment."""
    entries = [_fold(e) for e in prompt.split(SEPARATOR) if e.strip()]
    pairs = [f"{a}{SEPARATOR}{b}" for a, b in zip(entries, entries[1:])]
    texts = [_fold(segment.get("text", "")) for segment in segments]
    if any(len(re.findall(re.escape(entry), text)) >= REPEATS for text in texts for entry in entries):
        return True
    whole = " ".join(texts)  # Whisper may cut a copied list into several segments
    return any(pair in whole for pair in pairs) or (
        _list_like(whole) and sum(entry in whole for entry in entries) >= 2)


def _list_like(text: str) -> bool:
    commas, words = text.count(","), len(text.split())
    return commas >= LIST_COMMAS and commas >= LIST_SHARE * words
