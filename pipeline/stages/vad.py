"""Voice activity detection: where the speech is, so Whisper never decodes silence.

Uses the Silero VAD network that faster-whisper ships inside its wheel (ONNX, offline), which is the
detector faster-whisper itself uses. Decoding only voiced stretches is what keeps Whisper from
inventing text on silence and from stamping the first segment at 0.0 after a quiet start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.stages.audio_source import Audio, AudioSource, as_source
from pipeline.stages.media import SAMPLE_RATE

# VAD reads this much audio at a time: memory stays flat however long the recording is.
VAD_BLOCK_S = 600.0


@dataclass(frozen=True)
class SpeechRegion:
    start: float  # seconds
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_regions(
    audio: Audio,
    *,
    threshold: float = 0.5,
    min_silence_s: float = 1.0,
    pad_s: float = 0.2,
    min_speech_s: float = 0.25,
) -> list[SpeechRegion]:
    """Voiced stretches of 16 kHz mono audio, padded a little and merged across short pauses.

    Read in blocks of `VAD_BLOCK_S`; a stretch cut by a block edge is joined again with its other half.
    """
    source = as_source(audio)
    if source.samples == 0:
        return []
    from faster_whisper.vad import VadOptions

    options = VadOptions(
        threshold=threshold,
        min_silence_duration_ms=int(min_silence_s * 1000),
        speech_pad_ms=int(pad_s * 1000),
        min_speech_duration_ms=int(min_speech_s * 1000),
    )
    block = int(VAD_BLOCK_S * SAMPLE_RATE)
    regions: list[SpeechRegion] = []
    for first in range(0, source.samples, block):
        edge = first / SAMPLE_RATE
        for region in _block_regions(source, first, min(first + block, source.samples), options):
            # Only speech the edge cut in two is joined: the last region of the block before runs up
            # to the edge and this one starts right after it. Pauses inside a block stay as Silero found them.
            if regions and regions[-1].end >= edge - 0.05 and region.start < edge + min_silence_s:
                regions[-1] = SpeechRegion(regions[-1].start, region.end)
            else:
                regions.append(region)
    return regions


def _block_regions(source: AudioSource, first: int, last: int, options) -> list[SpeechRegion]:
    from faster_whisper.vad import get_speech_timestamps

    stamps = get_speech_timestamps(source.read_samples(first, last), options, sampling_rate=SAMPLE_RATE)
    return [SpeechRegion(max(first, first + s["start"]) / SAMPLE_RATE, min(last, first + s["end"]) / SAMPLE_RATE)
            for s in stamps]


def window_groups(regions: list[SpeechRegion], *, max_span_s: float = 30.0,
                  max_gap_s: float = 10.0) -> list[SpeechRegion]:
    """Neighbouring regions joined while the whole stays within one 30 s Whisper window.

    Why: Whisper encodes a full 30 s window however short the clip, so decoding each region on its
    own pays one encoder pass per pause-separated answer. Joined, the pauses between them (never
    longer than `max_gap_s`, so long silences stay out) are decoded in place: times stay exact.
    """
    groups: list[SpeechRegion] = []
    for region in regions:
        last = groups[-1] if groups else None
        if last and region.start - last.end <= max_gap_s and region.end - last.start <= max_span_s:
            groups[-1] = SpeechRegion(last.start, region.end)
        else:
            groups.append(region)
    return groups


MAX_CHUNK_S = 600.0  # a region longer than this (or the whole file, VAD off) is decoded in pieces


def decode_chunks(regions: list[SpeechRegion], audio: Audio | None = None, *,
                  search_s: float = 10.0) -> list[SpeechRegion]:
    """The units of decoding and of checkpointing: window groups, long ones cut into `MAX_CHUNK_S` pieces.

    With `audio`, each cut moves back to the quietest 100 ms of the `search_s` before it, so a cut falls
    between words rather than through one.
    """
    source = as_source(audio) if audio is not None else None
    chunks: list[SpeechRegion] = []
    for group in window_groups(regions):
        start = group.start
        while group.end - start > MAX_CHUNK_S:
            cut = start + MAX_CHUNK_S
            if source is not None:
                cut = _quietest(source, cut - search_s, cut)
            chunks.append(SpeechRegion(start, cut))
            start = cut
        chunks.append(SpeechRegion(start, group.end))
    return chunks


def _quietest(source: AudioSource, start_s: float, end_s: float, frame: int = SAMPLE_RATE // 10) -> float:
    """The middle of the lowest-energy 100 ms frame in [start_s, end_s), on the 10 ms grid."""
    first = int(start_s * SAMPLE_RATE)
    samples = source.read_samples(first, int(end_s * SAMPLE_RATE))
    if len(samples) < frame:
        return end_s
    energy = np.square(samples[:len(samples) // frame * frame].reshape(-1, frame)).mean(axis=1)
    return round((first + int(np.argmin(energy)) * frame + frame // 2) / SAMPLE_RATE, 2)


def clip_timestamps(regions: list[SpeechRegion], audio_samples: int) -> list[float]:
    """Flatten regions into Whisper's `clip_timestamps` form: start, end, start, end, ...

    Ends are clamped to the last whole mel frame (10 ms): a clip that ends past Whisper's content
    frames makes its seek loop spin forever on an empty window (seen with openai-whisper 20250625).
    """
    last = (audio_samples // 160) / 100  # HOP_LENGTH 160 at 16 kHz: 100 frames per second
    flat: list[float] = []
    for region in regions:
        start, end = round(region.start, 2), min(round(region.end, 2), last)
        if end - start >= 0.01:
            flat += [start, end]
    return flat


def voiced_windows(audio: Audio, regions: list[SpeechRegion], *, window_s: float = 30.0,
                   max_windows: int = 3) -> list[np.ndarray]:
    """Up to `max_windows` windows of voiced audio only, spread over the recording, for language ID.

    Positions are counted on the voiced stretches laid end to end; only the windows themselves are read.
    """
    if not regions:
        return []
    source = as_source(audio)
    spans = [(int(r.start * SAMPLE_RATE), min(int(r.end * SAMPLE_RATE), source.samples)) for r in regions]
    spans = [(a, b) for a, b in spans if b > a]
    voiced = sum(b - a for a, b in spans)
    size = int(window_s * SAMPLE_RATE)
    count = max(1, min(max_windows, voiced // size))
    starts = [0] if count == 1 else np.linspace(0, voiced - size, count).astype(int).tolist()
    return [_voiced_stretch(source, spans, start, min(start + size, voiced)) for start in starts]


def _voiced_stretch(source: AudioSource, spans: list[tuple[int, int]], start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the voiced spans laid end to end."""
    pieces, offset = [], 0
    for a, b in spans:
        lo, hi = max(start, offset), min(stop, offset + b - a)
        if lo < hi:
            pieces.append(source.read_samples(a + lo - offset, a + hi - offset))
        offset += b - a
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
