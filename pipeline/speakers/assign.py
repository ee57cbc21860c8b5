"""Speakers onto a transcript: each segment takes the speaker of its words, split where that changes.

A segment's words carry their own times, so a segment that runs across a turn change is cut between
the last word of one speaker and the first of the next; each part keeps its words and their times,
and its confidence is recomputed from its own words. A segment without word times (run with
--no-word-timestamps) cannot be cut: it takes the speaker heard longest within it.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.asr.core import segment_confidence
from pipeline.speakers.diarize import Turn
from pipeline.transcript import Segment, Transcript, Word


def speaker_at(turns: list[Turn], start: float, end: float) -> str | None:
    """The speaker heard longest in [start, end], else the one whose turn is nearest (a word said in a pause)."""
    if not turns:
        return None
    overlap = {}
    for turn in turns:
        overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + max(0.0, min(end, turn.end) - max(start, turn.start))
    if max(overlap.values()) > 0:
        return max(overlap, key=overlap.get)
    middle = (start + end) / 2
    return min(turns, key=lambda t: max(t.start - middle, middle - t.end)).speaker


MIN_RUN_S = 1.0  # a shorter run of words is too brief to trust as another voice: turns are placed to ~0.4 s


def runs(words: list[Word], turns: list[Turn]) -> list[tuple[str | None, list[Word]]]:
    """The words grouped into consecutive runs of one speaker; a run under `MIN_RUN_S` takes the speaker
    of its longer neighbour, briefest first."""
    grouped = _grouped([(speaker_at(turns, w.start, w.end), w) for w in words])
    while len(grouped) > 1:
        n = min(range(len(grouped)), key=lambda k: _span(grouped[k][1]))
        if _span(grouped[n][1]) >= MIN_RUN_S:
            break
        longer = max((k for k in (n - 1, n + 1) if 0 <= k < len(grouped)), key=lambda k: _span(grouped[k][1]))
        grouped[n] = (grouped[longer][0], grouped[n][1])
        grouped = _grouped([(speaker, w) for speaker, run in grouped for w in run])
    return grouped


def _grouped(labelled: list[tuple[str | None, Word]]) -> list[tuple[str | None, list[Word]]]:
    out: list[tuple[str | None, list[Word]]] = []
    for speaker, word in labelled:
        if out and out[-1][0] == speaker:
            out[-1][1].append(word)
        else:
            out.append((speaker, [word]))
    return out


def _span(words: list[Word]) -> float:
    return words[-1].end - words[0].start


def split(seg: Segment, turns: list[Turn]) -> list[Segment]:
    """`seg` with its speaker, or its parts, one per speaker run of its words."""
    if not seg.words:
        return [replace(seg, speaker=speaker_at(turns, seg.start, seg.end))]
    parts = runs(seg.words, turns)
    if len(parts) == 1:
        return [replace(seg, speaker=parts[0][0])]
    return [_part(seg, speaker, words) for speaker, words in parts]


def _part(seg: Segment, speaker: str | None, words: list[Word]) -> Segment:
    text = "".join(w.word for w in words).strip()
    avg_logprob, compression = segment_confidence({"avg_logprob": seg.avg_logprob}, text, words)
    return replace(seg, start=words[0].start, end=words[-1].end, text=text, words=words, speaker=speaker,
                   avg_logprob=round(avg_logprob, 4), compression_ratio=round(compression, 4),
                   flags=list(seg.flags), suggestions=None,
                   cut=seg.cut if words[-1] is seg.words[-1] else None)  # a loop's cut followed the last word


def apply_speakers(transcript: Transcript, turns: list[Turn], record: dict) -> Transcript:
    """Every segment labelled (split at speaker changes) and renumbered; the encoder in `models.speakers`."""
    segments = [part for seg in transcript.segments for part in split(seg, turns)]
    transcript.segments = [replace(seg, id=n) for n, seg in enumerate(segments)]
    transcript.models["speakers"] = record
    return transcript
