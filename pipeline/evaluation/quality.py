"""How good the machine is on this archive's own speech, measured on what reviewers checked.

Every segment a person marked checked is ground truth no vendor has. Its machine draft is the text of
revision 0 over the same time span (the segments of the draft whose middle falls inside the checked
one, so a split or merged segment still pairs up); the checked text is the newest revision's. Edits
are counted after the language's normalisation (`textnorm`, the same as `testimony eval`), summed per
language, model, recording, speaker and month, then divided: a rate over all checked speech, not a
mean of per-segment rates. English a person edited or wrote is scored against the machine's (chrF and
BLEU). The words reviewers replace most often, and capitalised names they write that the run's glossary
lacks, are listed so the team can fix the glossary rather than the same word again.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

from pipeline.archive import catalog, revisions
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.evaluation.textnorm import normalize
from pipeline.transcript import Transcript

NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w'-]+)")  # capitalised, not sentence-initial


@dataclass
class Pair:
    """One checked segment beside the machine's draft of the same span."""

    recording: str
    language: str
    model: str
    speaker: str
    time: str  # when the revision that holds the check was saved (ISO, UTC)
    seconds: float
    draft: str
    checked: str
    machine_english: str | None = None
    person_english: str | None = None  # set only when a person edited or wrote it


@dataclass
class Tally:
    words: int = 0
    word_edits: int = 0
    chars: int = 0
    char_edits: int = 0
    seconds: float = 0.0
    segments: int = 0

    def add(self, scores: dict[str, Any], seconds: float) -> None:
        self.words += scores["ref_words"]
        self.word_edits += scores["word_edits"]
        self.chars += scores["ref_chars"]
        self.char_edits += scores["char_edits"]
        self.seconds += seconds
        self.segments += 1

    def figures(self) -> dict[str, Any]:
        return {"segments": self.segments, "hours": round(self.seconds / 3600, 4), "words": self.words,
                "wer": round(self.word_edits / self.words, 4) if self.words else None,
                "cer": round(self.char_edits / self.chars, 4) if self.chars else None}


@dataclass
class Report:
    pairs: int = 0
    groups: dict[str, dict[str, Tally]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Tally)))
    corrections: Counter = field(default_factory=Counter)
    missing_names: Counter = field(default_factory=Counter)
    english: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    model_month: dict[str, dict[str, Tally]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Tally)))


def _draft_text(draft: list[dict], start: float, end: float) -> str:
    """The machine's words over [start, end): draft segments whose middle lies inside."""
    return " ".join(s["text"].strip() for s in draft if start <= (s["start"] + s["end"]) / 2 < end).strip()


def _draft_english(draft: list[dict], start: float, end: float) -> str:
    return " ".join((s.get("translation") or "").strip() for s in draft
                    if start <= (s["start"] + s["end"]) / 2 < end).strip()


def bundle_pairs(bundle: Path, transcript: Transcript) -> list[Pair]:
    """The checked segments of one bundle paired with the draft; none when nobody checked any."""
    chain = revisions.chain(bundle)
    if len(chain) < 2:
        return []
    draft, newest = chain[0].segments, chain[-1]
    asr = transcript.models.get("asr") or {}
    model = str(asr.get("name") or asr.get("model") or "unknown")
    return [_pair(transcript, model, newest.time, draft, s) for s in newest.segments if s.get("checked")]


def _pair(transcript: Transcript, model: str, time: str, draft: list[dict], s: dict) -> Pair:
    person = s.get("translation") if s.get("english_source") in ("edited", "written") else None
    return Pair(transcript.id, transcript.language or "unknown", model, s.get("speaker") or "-", time,
                max(0.0, s["end"] - s["start"]), _draft_text(draft, s["start"], s["end"]), s["text"],
                _draft_english(draft, s["start"], s["end"]) or None, person)


def _substitutions(draft: str, checked: str, language: str) -> list[tuple[str, str]]:
    """(heard, written) for each run of replaced words, after normalisation."""
    import jiwer

    ref, hyp = normalize(checked, language), normalize(draft, language)
    if not ref.strip() or not hyp.strip():
        return []
    out = jiwer.process_words(ref, hyp)
    refs, hyps = out.references[0], out.hypotheses[0]
    return [(" ".join(hyps[c.hyp_start_idx:c.hyp_end_idx]), " ".join(refs[c.ref_start_idx:c.ref_end_idx]))
            for c in out.alignments[0] if c.type == "substitute"]


def _names(pair: Pair, known: set[str]) -> list[str]:
    """Capitalised words a reviewer wrote that the machine did not hear and the glossary lacks."""
    heard = pair.draft.casefold()
    return [n for n in NAME.findall(pair.checked) if n.casefold() not in known and n.casefold() not in heard]


def collect(archive: Path, *, language: str | None = None, since: str | None = None,
            glossary: list[str] = (), languages: Collection[str] | None = None) -> Report:
    """Score every checked segment of the archive (optionally one language, checked since a date);
    `glossary` (the team's current list) also counts as known when names are offered. `languages`
    keeps only those (a reviewer's, in the workspace), so nothing else is even scored."""
    from pipeline.evaluation.evaluate import score_text

    team = _words(list(glossary))
    report = Report()
    for video in catalog.list_videos(archive):
        bundle = archive / video.bundle if video.bundle else None
        if bundle is None or not (bundle / TRANSCRIPT).is_file():
            continue
        transcript = Transcript.load(bundle / TRANSCRIPT)
        known = _glossary(transcript) | team
        for pair in bundle_pairs(bundle, transcript):
            if ((language and pair.language != language) or (since and pair.time < since)
                    or (languages is not None and pair.language not in languages)):
                continue
            _score(report, pair, score_text(pair.checked, pair.draft, pair.language) if pair.checked.strip()
                   else None, known)
    return report


def _score(report: Report, pair: Pair, scores: dict[str, Any] | None, known: set[str]) -> None:
    report.pairs += 1
    if scores is not None and scores["ref_words"]:
        for group, key in (("language", pair.language), ("model", f"{pair.model} ({pair.language})"),
                           ("recording", pair.recording), ("speaker", f"{pair.recording} {pair.speaker}"),
                           ("month", pair.time[:7] or "unknown")):
            report.groups[group][key].add(scores, pair.seconds)
        report.model_month[f"{pair.model} ({pair.language})"][pair.time[:7] or "unknown"].add(scores, pair.seconds)
        report.corrections.update(_substitutions(pair.draft, pair.checked, pair.language))
    report.missing_names.update(_names(pair, known))
    if pair.person_english and pair.machine_english:
        report.english[pair.language].append((pair.machine_english, pair.person_english))


def _words(texts: list[str]) -> set[str]:
    return {w.casefold() for text in texts for w in re.findall(r"[\w'-]+", text)}


def _glossary(transcript: Transcript) -> set[str]:
    """The names the run was prompted with (the glossary it used), folded."""
    options = (transcript.models.get("asr") or {}).get("options") or {}
    return _words([str(options.get("prompt") or "")])


def summary(report: Report, top: int = 20) -> dict[str, Any]:
    """The report as plain data (what `--json` prints and the text view reads)."""
    from pipeline.evaluation.evaluate import translation_scores

    english = {lang: {"segments": len(rows), **translation_scores([m for m, _ in rows], [p for _, p in rows])}
               for lang, rows in report.english.items()}
    return {"checked_segments": report.pairs,
            "groups": {g: {k: t.figures() for k, t in sorted(rows.items())} for g, rows in report.groups.items()},
            "english": english,
            "model_month": {m: {k: t.figures() for k, t in sorted(rows.items())}
                            for m, rows in sorted(report.model_month.items())},
            "corrections": [{"heard": h, "written": w, "times": n}
                            for (h, w), n in report.corrections.most_common(top)],
            "glossary_lines": [{"name": n, "times": c} for n, c in report.missing_names.most_common(top)]}


def text_view(data: dict[str, Any]) -> str:
    """The summary as a person reads it in a terminal: one table per grouping, then the lists."""
    lines = [f"{data['checked_segments']} checked segment(s)"]
    titles = {"language": "per language", "model": "per model", "recording": "per recording",
              "speaker": "per speaker", "month": "over time (month of the check)"}
    for group, title in titles.items():
        rows = data["groups"].get(group) or {}
        if rows:
            lines += ["", title, f"  {'':<32} {'segments':>8} {'hours':>8} {'words':>7} {'WER':>7} {'CER':>7}"]
            lines += [_row(key, f) for key, f in rows.items()]
    for language, f in data["english"].items():
        lines.append(f"\nEnglish a person edited or wrote ({language}): {f['segments']} segment(s), "
                     f"chrF {f['chrf']:.1f}, BLEU {f['bleu']:.1f} (machine against person)")
    if data["corrections"]:
        lines += ["", "most frequent corrections (heard -> written)"]
        lines += [f"  {c['times']:>4}  {c['heard']} -> {c['written']}" for c in data["corrections"]]
    if data["glossary_lines"]:
        lines += ["", "names reviewers wrote that the glossary lacks (lines to add to it)"]
        lines += [n["name"] for n in data["glossary_lines"]]
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _row(key: str, f: dict[str, Any]) -> str:
    return (f"  {key[:32]:<32} {f['segments']:>8} {f['hours']:>8.3f} {f['words']:>7} {_rate(f['wer']):>7} "
            f"{_rate(f['cer']):>7}")
