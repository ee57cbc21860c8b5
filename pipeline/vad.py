"""Voice activity detection: where the speech is, so Whisper never decodes silence.

Uses the Silero VAD network that faster-whisper ships inside its wheel (ONNX, offline), which is the
detector faster-whisper itself uses. Decoding only voiced stretches is what keeps Whisper from
inventing text on silence and from stamping the first segment at 0.0 after a quiet start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .media import SAMPLE_RATE


@dataclass(frozen=True)
class SpeechRegion:
    start: float  # seconds
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_regions(
    audio: np.ndarray,
    *,
    threshold: float = 0.5,
    min_silence_s: float = 1.0,
    pad_s: float = 0.2,
    min_speech_s: float = 0.25,
) -> list[SpeechRegion]:
    """Voiced stretches of 16 kHz mono audio, padded a little and merged across short pauses."""
    if audio.size == 0:
        return []
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=threshold,
        min_silence_duration_ms=int(min_silence_s * 1000),
        speech_pad_ms=int(pad_s * 1000),
        min_speech_duration_ms=int(min_speech_s * 1000),
    )
    stamps = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    total = len(audio) / SAMPLE_RATE
    return [SpeechRegion(max(0.0, s["start"] / SAMPLE_RATE), min(total, s["end"] / SAMPLE_RATE))
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


def voiced_windows(audio: np.ndarray, regions: list[SpeechRegion], *, window_s: float = 30.0,
                   max_windows: int = 3) -> list[np.ndarray]:
    """Up to `max_windows` windows of voiced audio only, spread over the recording, for language ID."""
    if not regions:
        return []
    voiced = np.concatenate([audio[int(r.start * SAMPLE_RATE):int(r.end * SAMPLE_RATE)] for r in regions])
    size = int(window_s * SAMPLE_RATE)
    count = max(1, min(max_windows, len(voiced) // size))
    if count == 1:
        return [voiced[:size]]
    starts = np.linspace(0, len(voiced) - size, count).astype(int)
    return [voiced[s:s + size] for s in starts]
