"""The one folding of text that search and the glossary share: NFKC, without combining marks, format
characters or the Arabic tatweel, so the same word typed or transcribed two ways looks the same. Below
the catalog and the stages, which both use it."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """The form both indexed text and queries take, so equal words look equal to the tokenizer."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Mn", "Me", "Cf") and ch != "\u0640")
