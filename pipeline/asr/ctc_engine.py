"""ASR with a CTC model (Omnilingual ASR CTC, GigaAM) on onnxruntime: the engine for kk and ug beyond Whisper.

The loop is the shared one (`Engine.transcribe`, `asr.core.transcribe_with`): our voiced regions,
one chunk read, decoded and checkpointed at a time, the same flags and per-segment confidence
(`asr.core._segments`). What this engine does inside a chunk:
- Calls: each voiced clip is scored in calls of at most `ctc_store.MAX_CALL_SECONDS` (40 s for
  Omnilingual, its limit; 30 s for GigaAM). A longer clip is cut at the quietest 100 ms within the last
  `QUIET_WINDOW_SECONDS` before the limit (a pause, where one is), not into equal parts, so a word is not
  split between two calls; each call's frames are put back on the clip's clock.
- Decoding: greedy CTC (most probable token per frame, repeats merged, blanks dropped), no sampling,
  so there is no fallback and nothing to seed; onnxruntime on one thread, sequential: the same audio
  gives the same bytes.
- Word times from the frame alignment: a word runs from the first frame of its first token to the
  end of the last frame of its last token; its probability is the mean over its tokens of the
  posterior of the emitted token at the frames it was emitted. Segment confidence is then the mean
  log of those (`asr.core.segment_confidence`), so a doubtful sentence is flagged, not its window.
- Segments: the model writes no punctuation, so words are grouped at pauses with a cap
  (`asr.readable`).
- Language: a CTC model cannot tell languages apart. The language comes from --language, the inbox
  folder or a sidecar; or, with no --engine, Whisper detects it and the language's route hands the
  decoding to this engine (`run.steps.stage_transcribe`'s reroute).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np

from pipeline.asr.core import AsrOptions
from pipeline.asr.ctc_features import model_inputs
from pipeline.asr.engine import Engine
from pipeline.asr.readable import sentences
from pipeline.errors import TestimonyError
from pipeline.stages.audio_source import Audio
from pipeline.stages.vad import SpeechRegion
from pipeline.store.ctc_store import MAX_CALL_SECONDS, SAMPLE_RATE, CtcExport, load_ctc, resolve_ctc, run
from pipeline.store.record import ModelRecord

QUIET_WINDOW_SECONDS = 10.0  # where a long clip may be cut: the last 10 s before the model's limit
QUIET_FRAME, QUIET_SPAN = 320, 5  # 20 ms energy frames, smoothed over 5 (100 ms)
GREEDY_FRAMES = 128  # frames normalised at a time (`_greedy`)
NO_DETECTION = (
    "the ctc engine cannot detect the language (a CTC model only writes what it hears): give it with "
    "--language (e.g. --language kk), drop the video in the archive's inbox/LANG/ folder or give a sidecar "
    "with its language; or leave --engine out, so that Whisper detects the language and that language's "
    "route picks the ctc engine")


@dataclass(frozen=True)
class CtcModel:
    session: Any
    export: CtcExport
    record: ModelRecord


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    """Log-posteriors per frame; idempotent on GigaAM's log_probs, normalises Omnilingual's logits."""
    scores = scores.astype(np.float64)
    top = scores.max(axis=1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))


def _greedy(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(most probable token, its log-posterior) per frame: all greedy decoding and word times need.

    Normalised `GREEDY_FRAMES` frames at a time: every value is computed as over the whole call (each
    frame's row on its own), but the float64 work stays in the cache, and a 40 s Omnilingual call's
    (2000, 9812) scores are never held three times over in float64 (about 0.5 GB)."""
    best = np.empty(len(scores), dtype=np.intp)
    picked = np.empty(len(scores), dtype=np.float64)
    for first in range(0, len(scores), GREEDY_FRAMES):
        logp = _log_softmax(scores[first:first + GREEDY_FRAMES])
        best[first:first + len(logp)] = logp.argmax(axis=1)
        picked[first:first + len(logp)] = logp[np.arange(len(logp)), best[first:first + len(logp)]]
    return best, picked


def _calls(clip: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """[first, last) sample ranges of calls of at most `limit` seconds covering `clip`, each cut at the
    quietest stretch of the window before the limit: a cut in a pause splits no word."""
    limit_n = int(limit * SAMPLE_RATE)
    window_n = int(min(QUIET_WINDOW_SECONDS, limit / 2) * SAMPLE_RATE)
    bounds = [0]
    while len(clip) - bounds[-1] > limit_n:
        low = bounds[-1] + limit_n - window_n
        bounds.append(low + _quietest(clip[low:low + window_n]))
    bounds.append(len(clip))
    return list(zip(bounds[:-1], bounds[1:]))


def _quietest(stretch: np.ndarray) -> int:
    """The sample offset of the middle of the quietest `QUIET_SPAN` frames of `stretch` (the first such
    run where several are equally quiet, as digital silence is): energy smoothed over 100 ms, so a stop
    consonant's closure inside a word does not pass for a pause."""
    frames = len(stretch) // QUIET_FRAME
    energy = (stretch[:frames * QUIET_FRAME].astype(np.float64).reshape(frames, QUIET_FRAME) ** 2).mean(axis=1)
    smooth = np.convolve(energy, np.ones(QUIET_SPAN) / QUIET_SPAN, mode="valid")
    quiet = np.flatnonzero(smooth <= smooth.min() + 1e-12)
    run_end = quiet[0] + int(np.argmin(np.diff(np.append(quiet, quiet[-1] + 2)) == 1))
    middle = (quiet[0] + run_end) // 2 + QUIET_SPAN // 2
    return int(middle * QUIET_FRAME + QUIET_FRAME // 2)


def _tokens(model: CtcModel, scores: np.ndarray) -> list[tuple[str, int, int, float]]:
    """Greedy CTC: (token text, first frame, last frame, mean posterior) of each emitted token."""
    best, picked = _greedy(scores)
    out: list[tuple[str, int, int, float]] = []
    frame = 0
    while frame < len(best):
        token, end = int(best[frame]), frame
        while end + 1 < len(best) and best[end + 1] == token:
            end += 1
        if token != model.export.blank:
            out.append((model.export.tokens[token], frame, end, float(np.exp(picked[frame:end + 1]).mean())))
        frame = end + 1
    return out


def _words(tokens: list[tuple[str, int, int, float]], seconds: float, offset: float) -> list[dict]:
    """Words from tokens: a space token or a `▁` prefix starts a new word; specials (`<unk>`) are dropped."""
    words: list[dict] = []
    current: list[tuple[str, int, int, float]] = []

    def close() -> None:
        text = "".join(t for t, *_ in current)
        if text:
            words.append({"word": " " + text, "start": round(offset + current[0][1] * seconds, 3),
                          "end": round(offset + (current[-1][2] + 1) * seconds, 3),
                          "probability": sum(p for *_, p in current) / len(current)})
        current.clear()

    for text, first, last, p in tokens:
        if text.startswith("<") and text.endswith(">"):
            continue
        if text.startswith(("▁", " ")):
            close()
        if text.strip("▁ "):
            current.append((text.strip("▁ "), first, last, p))
    close()
    return words


def _clip_words(model: CtcModel, audio: np.ndarray, start: float, end: float) -> list[dict]:
    """The words of one voiced clip, scored in calls no longer than the export allows."""
    first, last = int(start * SAMPLE_RATE), min(len(audio), int(math.ceil(end * SAMPLE_RATE)))
    fmt = model.export.format
    words: list[dict] = []
    for a, b in _calls(audio[first:last], MAX_CALL_SECONDS[fmt]):
        if b - a < SAMPLE_RATE // 10:  # under 100 ms: shorter than one word, and than some models' window
            continue
        scores = run(model.session, fmt, audio[first + a:first + b], model_inputs)
        words += _words(_tokens(model, scores), model.export.frame_seconds, (first + a) / SAMPLE_RATE)
    return words


def _segment(words: list[dict]) -> dict:
    """One segment in openai-whisper's dict shape, for `asr.core._segments`."""
    text = "".join(w["word"] for w in words).strip()
    raw = text.encode("utf-8")
    logprob = sum(math.log(max(w["probability"], 1e-6)) for w in words) / len(words)
    return {"text": " " + text, "start": words[0]["start"], "end": words[-1]["end"], "avg_logprob": logprob,
            "no_speech_prob": 0.0,  # no such head: the VAD chose these stretches as speech
            "compression_ratio": len(raw) / len(zlib.compress(raw)), "temperature": 0.0, "words": words}


def _decode(model: CtcModel, audio: np.ndarray, clips: list[float], options: AsrOptions) -> list[dict]:
    words = [w for start, end in zip(clips[::2], clips[1::2]) for w in _clip_words(model, audio, start, end)]
    segments = [_segment(piece) for piece in sentences(words)]
    if not options.word_timestamps:
        segments = [{k: v for k, v in item.items() if k != "words"} for item in segments]
    return segments


class CtcEngine(Engine):
    name = "ctc"

    def device(self, requested: str | None) -> str:
        if requested not in (None, "cpu"):
            raise TestimonyError(f"--device {requested}: the ctc engine runs on the CPU only (onnxruntime, "
                                 "one thread, for byte-identical output); run without --device")
        return "cpu"

    def load(self, model: str, device: str) -> tuple[Any, ModelRecord]:
        if not model:  # `--engine ctc` with no language given: nothing could choose a model
            raise TestimonyError(NO_DETECTION)
        record = resolve_ctc(model)
        session, export = load_ctc(record)
        return CtcModel(session, export, record), record

    def token(self, language: str, options: AsrOptions) -> str:
        return ""  # no language token: the model writes what it hears

    def detect_language(self, model: Any, audio: Audio, regions: list[SpeechRegion],
                        expected: tuple[str, ...] | None = None) -> tuple[str | None, float | None]:
        raise TestimonyError(NO_DETECTION)

    def language_totals(self, model: Any, audio: Audio, regions: list[SpeechRegion]) -> dict[str, float]:
        raise TestimonyError(NO_DETECTION)

    def decode(self, model: Any, audio: np.ndarray, clips: list[float], token: str,
               options: AsrOptions) -> list[dict]:
        return _decode(model, audio, clips, options)

    def facts(self, model: Any) -> dict[str, Any]:
        return {"engine": self.name, "engine_version": version("onnxruntime"), "device": "cpu",
                "format": model.export.format, "decoding": "greedy CTC"}


ENGINE = CtcEngine()
