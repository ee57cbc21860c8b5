"""ASR with faster-whisper (CTranslate2): the throughput engine, same input and output as `asr`.

Everything that shapes the transcript is shared with the reference engine (`whisper_engine`):
- The loop is the same function (`Engine.transcribe`, `asr.core.transcribe_with`): our voiced
  regions (`vad.speech_regions`, Silero with our parameters), one chunk of audio read and decoded at
  a time and checkpointed, each decoded in place through faster-whisper's `clip_timestamps`, so
  times are the recording's own and nothing is remapped. (faster-whisper's `vad_filter` instead
  glues the voiced chunks together, silences cut out, and maps times back afterwards: a segment can
  straddle a cut and its times rest on that remapping.) Neighbouring regions are decoded as one clip
  while they fit in a 30 s window (`vad.window_groups`): on CPU the encoder pass per clip dominates,
  and on five minutes of the LibriVox interview set this halved the CPU time (35 clips became 10)
  with WER 1.23% instead of 1.65%.
- Language: voted over the same voiced windows (`vad.voiced_windows`), probabilities averaged.
- Decoding guards: no conditioning on previous text, compression-ratio and log-prob thresholds,
  temperature fallback no higher than the options allow, hallucination-silence skipping with word
  timestamps; the same flags (`asr._segments`: low_confidence, possible_hallucination).
What differs is arithmetic: int8 weights on CPU (float16 on CUDA), so texts can differ slightly.

Reproducible fallback: CTranslate2 samples from a generator each worker thread seeds once, at its
first draw, from the global seed; `set_random_seed` later changes nothing for that thread. So each
chunk sets the seed (`asr.chunk_seed`) before decoding, and a model whose workers have drawn is
replaced by a fresh load of the same weights first (`_SeededWhisper`): only after a chunk that fell
back to sampling, which clean speech rarely does.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any, Iterator

import numpy as np

from pipeline.asr.core import LOGPROB_THRESHOLD, AsrOptions, chunk_seed
from pipeline.asr.engine import Engine, guards
from pipeline.asr.langid import pick
from pipeline.errors import ModelMissingError, TestimonyError
from pipeline.hardware import ct2_cuda_available, thread_count
from pipeline.stages.audio_source import Audio
from pipeline.stages.vad import SpeechRegion, voiced_windows
from pipeline.store import registry as model_registry
from pipeline.store.ct2_store import resolve_ct2
from pipeline.store.record import ModelRecord

_loaded: dict[tuple[str, str, str, int], tuple[Any, ModelRecord]] = {}
_load_lock = threading.Lock()


def resolve_device(requested: str | None) -> str:
    """CUDA when CTranslate2 sees a GPU (or when asked for), else the CPU; a GPU is never required."""
    if requested == "cuda" and not ct2_cuda_available():
        raise TestimonyError("--device cuda was asked for, but CTranslate2 sees no CUDA device (or this "
                             "ctranslate2 build has no CUDA support). Run without --device to use the CPU.")
    if requested:
        return requested
    return "cuda" if ct2_cuda_available() else "cpu"


def compute_type(device: str) -> str:
    """int8 on CPU (fastest there, quality close to float), float16 on CUDA."""
    return "float16" if device == "cuda" else "int8"


def load_faster_whisper(name_or_path: str, device: str | None = None) -> tuple[Any, ModelRecord]:
    """Load once per process, device and thread count; later videos of a run reuse the model."""
    from faster_whisper import WhisperModel

    record = resolve_ct2(name_or_path)
    device = resolve_device(device)
    threads = thread_count()
    key = (str(record.path), device, compute_type(device), threads)
    with _load_lock:  # concurrent callers (threaded task runners) never load a second copy
        if key not in _loaded:
            model_registry.check_before_load(record.path, {"model.bin": record.sha256}, record.name,
                                             f"Delete {record.path} and its .json record to convert it again.")
            try:
                model = WhisperModel(str(record.path), device=device, compute_type=compute_type(device),
                                     cpu_threads=threads, num_workers=1, local_files_only=True)
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelMissingError(
                    f"CTranslate2 model {record.path} could not be loaded ({type(exc).__name__}: {exc}). "
                    f"Delete {record.path} and its .json record to convert it again.") from None
            model.model = _SeededWhisper(model.model, str(record.path), device=device,
                                         compute_type=compute_type(device), intra_threads=threads,
                                         inter_threads=1)
            _loaded[key] = (model, record)
    return _loaded[key]


class _SeededWhisper:
    """CTranslate2's Whisper, reloaded before a seeded chunk once its workers have sampled."""

    def __init__(self, loaded: Any, path: str, **settings: Any) -> None:
        self._model, self._path, self._settings = loaded, path, settings
        self._lock = threading.Lock()  # one chunk at a time: draws of two chunks never interleave
        self._drawn = False  # loading draws nothing: the first sampled chunk may use this one

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("sampling_topk", 1) != 1 and kwargs.get("sampling_temperature", 1.0) > 0:
            self._drawn = True
        return self._model.generate(*args, **kwargs)

    @contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """One chunk, on a model whose generator is not made yet and with the seed it will take."""
        import ctranslate2

        with self._lock:
            ctranslate2.set_random_seed(seed)  # taken by a worker's generator when it is made
            if self._drawn:
                self._model = ctranslate2.models.Whisper(self._path, **self._settings)
                self._drawn = False
            yield


def detect_language(model: Any, audio: Audio, regions: list[SpeechRegion],
                    expected: tuple[str, ...] | None = None) -> tuple[str | None, float | None]:
    """Language voted over voiced windows (as `whisper_engine.detect_language`), among `expected`."""
    return pick(language_totals(model, audio, regions), expected)


def language_totals(model: Any, audio: Audio, regions: list[SpeechRegion]) -> dict[str, float]:
    """Whisper's language probabilities averaged over the voiced windows, encoded as one batch."""
    from faster_whisper.audio import pad_or_trim

    windows = voiced_windows(audio, regions)
    if not windows:
        return {}
    if not model.model.is_multilingual:
        return {"en": 1.0}
    extractor = model.feature_extractor
    features = np.stack([pad_or_trim(extractor(w)[:, :extractor.nb_max_frames]) for w in windows])
    results = model.model.detect_language(model.encode(features.astype(np.float32)))
    totals: dict[str, float] = {}
    for ranked in results:
        for token, p in ranked:
            code = token[2:-2]
            totals[code] = totals.get(code, 0.0) + p / len(windows)
    return totals


def _decode(model: Any, audio: np.ndarray, clips: list[float], token: str, options: AsrOptions) -> list[dict]:
    with model.model.seeded(chunk_seed(audio, clips)):
        return _decode_seeded(model, audio, clips, token, options)


def _decode_seeded(model: Any, audio: np.ndarray, clips: list[float], token: str,
                   options: AsrOptions) -> list[dict]:
    pieces, _info = model.transcribe(
        audio, **guards(options, token, clips), temperature=list(options.temperatures),
        beam_size=options.beam_size or 1, best_of=1,  # 1: greedy, as the reference engine's default
        log_prob_threshold=LOGPROB_THRESHOLD, hotwords=options.prompt,  # before every window, unlike initial_prompt
        vad_filter=False)  # our regions are already in clip_timestamps
    return [_as_dict(piece) for piece in pieces]  # the generator decodes lazily: this runs the model


def _as_dict(piece: Any) -> dict[str, Any]:
    """faster-whisper's Segment in the dict shape openai-whisper returns, for `asr._segments`."""
    item = {"text": piece.text, "start": piece.start, "end": piece.end, "avg_logprob": piece.avg_logprob,
            "no_speech_prob": piece.no_speech_prob, "compression_ratio": piece.compression_ratio,
            "temperature": piece.temperature}
    if piece.words is not None:
        item["words"] = [{"start": w.start, "end": w.end, "word": w.word, "probability": w.probability}
                         for w in piece.words]
    return item


class FasterWhisperEngine(Engine):
    name = "faster-whisper"

    def device(self, requested: str | None) -> str:
        return resolve_device(requested)

    def load(self, model: str, device: str) -> tuple[Any, ModelRecord]:
        return load_faster_whisper(model, device)

    def detect_language(self, model: Any, audio: Audio, regions: list[SpeechRegion],
                        expected: tuple[str, ...] | None = None) -> tuple[str | None, float | None]:
        return detect_language(model, audio, regions, expected)

    def language_totals(self, model: Any, audio: Audio, regions: list[SpeechRegion]) -> dict[str, float]:
        return language_totals(model, audio, regions)

    def decode(self, model: Any, audio: np.ndarray, clips: list[float], token: str,
               options: AsrOptions) -> list[dict]:
        return _decode(model, audio, clips, token, options)

    def facts(self, model: Any) -> dict[str, Any]:
        return {"engine": self.name, "engine_version": version("faster-whisper"),
                "ctranslate2_version": version("ctranslate2"), "device": model.model.device,
                "compute_type": model.model.compute_type}


ENGINE = FasterWhisperEngine()
