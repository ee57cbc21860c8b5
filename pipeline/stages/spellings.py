"""The English spelling a glossary gives a name (`Тұрсын = Tursun`), kept in the machine's English.

Translation models spell a name as their training data did (Tursyn, Tursin, Turson) or drop it; the team
spells it one way. Whichever route runs (Argos, OPUS-MT, NLLB, MADLAD: all CTranslate2 models here),
each segment whose original says a listed name (inflected too: `Тұрсынның`) must have the spelling in its
English, and this is checked after translation, in three steps, each recorded in the segment's
`spellings` with how it was kept:

- `kept`: the model wrote the spelling itself;
- `restored`: it wrote a near-miss of it (`Tursyn`, within the glossary's own edit allowance): replaced;
- `steered`: neither; the model is made to write the spelling at each word boundary of its own English
  in turn (CTranslate2's target prefix: what follows is the model's), and the candidate the model
  scores best (mean log-probability over the whole English, `score_batch`) is kept. The model still
  decides where the name goes and what the rest says;
- `missing`: the spelling cannot be written with the model's vocabulary; the segment is left as the model
  wrote it and the record says so, for review.

Why not substitute the spelling into the source before translating: a Latin word inside Cyrillic or
Arabic script is no guarantee (a model may transliterate or drop it), and it loses the name's suffix;
the steps above guarantee the spelling with any model and keep the source as it was said.
"""

from __future__ import annotations

import re
from typing import Any

from rapidfuzz.distance import Levenshtein

from pipeline.stages.glossary import WORD, _edits, _fold

MAX_PLACES = 64  # word boundaries tried when steering; a segment is sentence-sized, so this is all of them


def required(texts: list[str], english: dict[str, str]) -> list[list[tuple[str, str]]]:
    """Per text: (name, English spelling) of each glossary name the text says, inflected or not."""
    names = [(name, spelling, _fold(name)) for name, spelling in english.items() if _fold(name).strip()]
    found = []
    for text in texts:
        folded = " ".join(_fold(word) for word in WORD.findall(text or ""))
        found.append([(name, spelling) for name, spelling, target in names
                      if re.search(r"(?<!\w)" + re.escape(" ".join(target.split())), folded)])
    return found


def present(spelling: str, text: str) -> bool:
    """The spelling as written, at the start of a word (`Tursun's`, `Tursunov` count: the name is there)."""
    return re.search(r"(?<!\w)" + re.escape(spelling), text) is not None


def restore(text: str, spelling: str) -> str | None:
    """`text` with its nearest near-miss of `spelling` (same number of words, within the glossary's edit
    allowance, any case) replaced by the spelling; None when it has none."""
    words = list(WORD.finditer(text))
    size, target = len(spelling.split()), spelling.casefold()
    allowed, best = _edits(len(target)), None
    for n in range(len(words) - size + 1):
        start, end = words[n].start(), words[n + size - 1].end()
        cost = Levenshtein.distance(text[start:end].casefold(), target, score_cutoff=allowed)
        if cost <= allowed and (best is None or cost < best[0]):
            best = (cost, start, end)
    return None if best is None else text[:best[1]] + spelling + text[best[2]:]


def _boundaries(hypothesis: list[str]) -> list[int]:
    """Where a word may start in a token list: SentencePiece marks a word's first piece with `▁`,
    subword-nmt BPE marks a piece that goes on with `@@`."""
    pieces = any(t.startswith("▁") for t in hypothesis)
    places = [0]
    for p in range(1, len(hypothesis) + 1):
        if p == len(hypothesis) or (hypothesis[p].startswith("▁") if pieces else not hypothesis[p - 1].endswith("@@")):
            places.append(p)
    return places[:MAX_PLACES]


def steer(hop: Any, source: list[str], hypothesis: list[str], spelling: str, decode_options: dict,
          held: tuple[str, ...] = ()) -> list[str] | None:
    """The model's best English that has `spelling` at a word boundary of `hypothesis` (its own English,
    tokens without the target-language prefix), or None when the tokenizer cannot write the spelling.
    `held`: spellings the English has already; the candidates that keep most of them are preferred, so a
    segment that says several names does not trade one for another (forcing at the end keeps them all)."""
    forced = hop.tokenizer.encode(spelling)
    if not forced or hop.tokenizer.decode(forced).strip() != spelling:
        return None
    lead = [hop.target_prefix] if hop.target_prefix else []
    prefixes = [lead + hypothesis[:p] + forced for p in _boundaries(hypothesis)]
    options = {**decode_options, "max_decoding_length": decode_options["max_decoding_length"] + len(forced)}
    results = hop.translator.translate_batch([source] * len(prefixes), target_prefix=prefixes, **options)
    candidates = [result.hypotheses[0] for result in results]
    scores = hop.translator.score_batch([source] * len(candidates), candidates)
    means = [sum(s.log_probs) / max(1, len(s.log_probs)) for s in scores]
    keeps = [sum(present(h, hop.tokenizer.decode(c[len(lead):])) for h in held) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: (keeps[i], means[i], -i))  # most kept, then the score
    return candidates[best][len(lead):]


def keep(hop: Any, source: list[str], hypothesis: list[str], value: str, needed: list[tuple[str, str]],
         decode_options: dict) -> tuple[str, list[dict[str, str]]]:
    """One segment's English with every needed spelling in it where the model can write it, and how each
    got there (`kept`, `restored`, `steered` or `missing`)."""
    notes = []
    for name, spelling in needed:
        how = "kept" if present(spelling, value) else None
        if how is None and (fixed := restore(value, spelling)) is not None:
            value, how = fixed, "restored"
            hypothesis = hop.tokenizer.encode(value)  # a later name is steered from the restored English
        held = tuple(n["english"] for n in notes if present(n["english"], value))  # the ones still there
        if how is None and (steered := steer(hop, source, hypothesis, spelling, decode_options, held)) is not None:
            hypothesis, value, how = steered, hop.tokenizer.decode(steered).strip(), "steered"
        notes.append({"glossary": name, "english": spelling, "how": how or "missing"})
    for note in notes:  # a later spelling's steering may have lost an earlier one: say so
        if note["how"] != "missing" and not present(note["english"], value):
            note["how"] = "missing"
    return value, notes
