"""Subtitle and text renderings of a transcript: original, English, and bilingual (original over English)."""

from __future__ import annotations

import re
from typing import Callable

from pipeline.transcript import Segment, Transcript

Line = Callable[[Segment], str | None]


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _clean(text: str | None) -> str:
    # A blank line would end a cue early; "-->" inside a cue would confuse VTT parsers.
    return " ".join((text or "").split()).replace("-->", "->")


def original(seg: Segment) -> str:
    return _clean(seg.text)


def english(seg: Segment) -> str | None:
    return _clean(seg.translation) if seg.translation else None


def bilingual(seg: Segment) -> str:
    lines = [_clean(seg.text)]
    if seg.translation:
        lines.append(_clean(seg.translation))
    return "\n".join(lines)


def named_speakers(transcript: Transcript) -> dict[str, str]:
    """The run's names (`--speaker-names` over the sidecar's), else the sidecar's alone (a transcript
    made before runs kept names)."""
    return transcript.speaker_names or ((transcript.sidecar or {}).get("content") or {}).get("speaker_names") or {}


def speaker_name(transcript: Transcript, seg: Segment) -> str | None:
    """Who speaks in `seg`: its label (`S1`) as the transcript names it, else as it is."""
    if not seg.speaker:
        return None
    return _clean(named_speakers(transcript).get(seg.speaker, seg.speaker)) or None


def lone_voice(transcript: Transcript) -> bool:
    """One unnamed machine label (`S1`) throughout: an `S1:` in front of every line would say nothing."""
    labels = {seg.speaker for seg in transcript.segments if seg.speaker}
    if len(labels) != 1:
        return False
    label = labels.pop()
    return re.fullmatch(r"S\d+", label) is not None and label not in named_speakers(transcript)


def _cues(transcript: Transcript, line: Line, *, vtt: bool = False) -> list[tuple[Segment, str]]:
    """(segment, cue text) with the speaker in front: `Name: ` in SRT and text, a `<v Name>` voice
    span in WebVTT (whose tag cannot hold `<`, `>` or `&`); none where one unnamed voice speaks."""
    cues, named = [], not lone_voice(transcript)
    for seg in transcript.segments:
        if not (text := line(seg)):
            continue
        if named and (name := speaker_name(transcript, seg)):
            text = f"<v {''.join(c for c in name if c not in '<>&')}>{text}" if vtt else f"{name}: {text}"
        cues.append((seg, text))
    return cues


def render_srt(transcript: Transcript, line: Line) -> str:
    blocks = [
        f"{n}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n{text}\n"
        for n, (seg, text) in enumerate(_cues(transcript, line), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, line: Line) -> str:
    blocks = ["WEBVTT\n"] + [
        f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}\n{text}\n"
        for seg, text in _cues(transcript, line, vtt=True)
    ]
    return "\n".join(blocks)


def render_txt(transcript: Transcript, line: Line) -> str:
    return "".join(f"{text}\n" for _, text in _cues(transcript, line))


def renderings(transcript: Transcript) -> dict[str, str]:
    """File name -> content for every rendering the bundle carries."""
    lang = transcript.language or "und"
    files = {
        f"{lang}.srt": render_srt(transcript, original),
        f"{lang}.vtt": render_vtt(transcript, original),
        f"{lang}.txt": render_txt(transcript, original),
    }
    if transcript.needs_translation and transcript.has_translation:
        files |= {
            "en.srt": render_srt(transcript, english),
            "en.vtt": render_vtt(transcript, english),
            "en.txt": render_txt(transcript, english),
            f"{lang}-en.srt": render_srt(transcript, bilingual),
            f"{lang}-en.vtt": render_vtt(transcript, bilingual),
        }
    return files
