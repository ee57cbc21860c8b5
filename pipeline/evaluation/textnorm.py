"""Text normalisation before WER/CER, per script, so scores count words, not typing conventions.

Every language gets the same base (`basic`):
  1. Unicode NFKC: folds Arabic presentation forms (U+FB50-U+FEFF, what copy-paste from a PDF
     gives) to the base letters, composes a decomposed yeh + hamza (U+064A U+0654) into ئ U+0626,
     and folds full-width and compatibility characters.
  2. Invisible format characters (category Cf: ZWJ/ZWNJ, bidi marks, soft hyphen) are removed.
  3. casefold (the full Unicode lower-casing, not `lower()`).
  4. Punctuation (every category P*: Latin, the Arabic comma ، U+060C, semicolon ؛ U+061B, question
     mark ؟ U+061F, full stop ۔ U+06D4, guillemets, hyphens such as U+2010 in қадір‐қасиеті) becomes
     a space, so a hyphenated compound scores the same as the two words written apart.
  5. Decimal digits of any script (Arabic-Indic U+0660.., Persian U+06F0..) become ASCII digits.
  6. Whitespace runs collapse to one space.

Kazakh (Cyrillic), kept minimal: ё → е (Kazakh has ё only in Russian loans, and writers, like
Russian ones, routinely drop its dots); and in a word that mixes Latin and Cyrillic letters, the
Latin lookalikes (a c e i o p x y h ə, A B C E H I K M O P T X Y Ə) are read as the Cyrillic letters
they look like (lower-case h as һ, upper-case Y as Ү), a typing artefact of keyboards without
Kazakh letters. Distinct Kazakh letters (і/и, ү/ұ,
қ/к, ғ/г, ң/н, ө/о, ә/а) are never merged: they are different phonemes and different words.

Uyghur (Arabic script, UEY): UEY writes every vowel as a letter and uses no harakat, so:
  - tatweel U+0640 (justification stretching) is removed;
  - combining marks (Mn: harakat U+064B-U+0652, superscript alef U+0670, stray hamza) are removed,
    after a dotless-seat hamza ى + U+0654 is first read as ئ U+0626, the letter writers meant;
  - code points from Persian/Arabic keyboards are read as the Uyghur letter they render as:
    keheh ک U+06A9 → kaf ك U+0643; Farsi yeh ی U+06CC → ى U+0649 (i) at a word's end, where it
    renders dotless, else ي U+064A (y), where it renders with two dots; heh ه U+0647 / heh goal
    ہ U+06C1 → ە U+06D5 (e) at a word's end, else ھ U+06BE (h).
  ي U+064A (y) and ى U+0649 (i), ې U+06D0 (é) and ە U+06D5 (e), و U+0648 (o) and ۇ U+06C7 (u) are
  distinct UEY letters and are never merged (the brief's idea of folding ي/ى/ی into one would make
  e.g. "ياكى" (yaki) and "ىاكى" equal).

English: Whisper's own `EnglishTextNormalizer` (spelling variants, numbers, "Mr." = "mister"), the
normaliser Whisper's published English WERs use, then the base steps.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SPACES = re.compile(r"\s+")


def basic(text: str) -> str:
    """The script-independent steps every language gets (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        if cat.startswith("P"):
            out.append(" ")
        elif cat == "Nd":
            out.append(str(unicodedata.digit(ch)))
        else:
            out.append(ch)
    return _SPACES.sub(" ", "".join(out).casefold()).strip()


# Kazakh -------------------------------------------------------------------------------------------

# Latin letters that look like Cyrillic ones, by case (upper-case H is Н, lower-case h is һ;
# upper-case Y is Ү, lower-case y is у), so the fold comes before casefolding.
_LATIN_LOOKALIKES = str.maketrans("ABCEHIKMOPTXYƏaceiopxyhə", "АВСЕНІКМОРТХҮӘасеіорхуһә")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-zƏə]")


def kazakh(text: str) -> str:
    """Base steps, ё → е, and Latin lookalikes inside Cyrillic words read as Cyrillic."""
    words = unicodedata.normalize("NFKC", text).split()
    text = " ".join(w.translate(_LATIN_LOOKALIKES) if _CYRILLIC.search(w) and _LATIN.search(w) else w
                    for w in words)
    return basic(text).replace("ё", "е")


# Uyghur -------------------------------------------------------------------------------------------

TATWEEL = "\u0640"
_WORD_END = r"(?!\w)"  # not followed by a letter or digit: the letter takes its final/isolated form
_UYGHUR_FOLDS = [  # (pattern, replacement), applied in order after harakat removal
    (re.compile("\u06a9"), "\u0643"),  # keheh → kaf
    (re.compile("\u06cc" + _WORD_END), "\u0649"),  # Farsi yeh, final: renders dotless → ى (i)
    (re.compile("\u06cc"), "\u064a"),  # Farsi yeh elsewhere: renders dotted → ي (y)
    (re.compile("[\u0647\u06c1]" + _WORD_END), "\u06d5"),  # heh / heh goal, final → ە (e)
    (re.compile("[\u0647\u06c1]"), "\u06be"),  # heh elsewhere → ھ (h)
]


def uyghur(text: str) -> str:
    """Base steps plus tatweel and harakat removed and keyboard variants read as UEY letters."""
    text = unicodedata.normalize("NFKC", text).replace(TATWEEL, "")
    text = text.replace("\u0649\u0654", "\u0626")  # hamza over a dotless seat: the letter ئ
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    for pattern, replacement in _UYGHUR_FOLDS:
        text = pattern.sub(replacement, text)
    return basic(text)


# English ------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _english_normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def english(text: str) -> str:
    """Whisper's English normaliser (what its published English WERs use), then the base steps."""
    return basic(_english_normalizer()(text))


NORMALIZERS = {"kk": kazakh, "ug": uyghur, "en": english}


def normalize(text: str, language: str | None) -> str:
    """Normalise `text` for the language it is written in; other languages get the base steps."""
    return NORMALIZERS.get(language or "", basic)(text)


def describe(language: str | None) -> str:
    """One line for the report saying which normaliser scored a language."""
    names = {"kk": "Kazakh Cyrillic (base + ё→е + Latin lookalikes in Cyrillic words)",
             "ug": "Uyghur Arabic script (base + no tatweel/harakat + Persian/Arabic keyboard letters "
                   "read as UEY letters)",
             "en": "English (Whisper's EnglishTextNormalizer + base)"}
    return names.get(language or "", "base (NFKC, casefold, punctuation and format characters removed)")
