"""The ASR loop both engines share (`whisper_engine`, `fw_engine`): voiced audio only, guarded.

- Silence: Silero VAD picks the voiced stretches and Whisper decodes only those (`clip_timestamps`),
  so silence yields no text and times land where the speech is. Neighbouring stretches share one
  30 s window (`vad.window_groups`): one encoder pass per group, not per answer.
- Repetition loops: no conditioning on previous text (the usual trigger of loops), compression-ratio
  check, and a segment that repeats its predecessor is flagged; a loop that survives the fallback is
  cut to its first occurrence, the cut kept in the segment (`asr.loops`).
- Temperature-fallback runaways on CPU: fallback stops at 0.4 instead of climbing to 1.0.
- Reproducible fallback: the sampling of each chunk is seeded from its own samples and clip times
  (`chunk_seed`), so the same audio, options and model give the same segments in any process, after
  a resume too.
- Confidence per segment, not per 30 s window: from the probabilities of the segment's own words
  (`segment_confidence`), so a flag points at the sentence that is doubtful.

Decoding goes one window group at a time (`transcribe_with`; an engine gives `detect`, its language
probabilities, and `decode`): only that
group's audio is read, so memory does not grow with the recording, and each finished group is
appended to a checkpoint, so a killed run resumes where it stopped with the same times.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from pipeline.asr.langid import pick
from pipeline.asr.languages import languages
from pipeline.asr.loops import cut_loop
from pipeline.asr.prompt import leaked
from pipeline.errors import ModelMissingError
from pipeline.stages.audio_source import Audio, AudioSource, as_source, duration
from pipeline.stages.checkpoint import Checkpoint
from pipeline.stages.media import SAMPLE_RATE
from pipeline.stages.vad import SpeechRegion, clip_timestamps, decode_chunks, speech_regions
from pipeline.transcript import LOW_CONFIDENCE, POSSIBLE_HALLUCINATION, Segment, Word

HOP = 160  # samples per mel frame: chunks start on the 10 ms grid, so their times shift by whole frames

LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
COMPRESSION_RATIO_THRESHOLD = 2.4
ENGINES = ("whisper", "faster-whisper", "ctc")


@dataclass(frozen=True)
class AsrOptions:
    """Everything here changes the transcript, so all of it goes into the cache key and the record."""

    model: str = "base"
    language: str = "auto"  # a language code, or "auto" to detect on voiced audio
    whisper_token: str | None = None  # decode with this token but report `language` (e.g. ug over uz)
    beam_size: int | None = None  # None: greedy, the CPU-friendly choice
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4)
    vad: bool = True
    word_timestamps: bool = True
    engine: str = "whisper"  # "whisper" (openai-whisper, the reference), "faster-whisper" or "ctc" (asr.engine)
    prompt: str | None = None  # glossary names put before every window (`asr.prompt`); None: no prompt
    expect: tuple[str, ...] | None = None  # `auto` picks among these languages (`asr.langid`); None: any

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown ASR engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.expect is not None:  # a transcript's JSON list, read back by `verify --reproduce`
            object.__setattr__(self, "expect", tuple(self.expect) or None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AsrResult:
    segments: list[Segment]
    language: str | None
    detected_language: str | None
    language_probability: float | None
    whisper_token: str | None
    speech: list[SpeechRegion]
    unprompted_chunks: int = 0  # chunks decoded again without the glossary prompt, which had leaked
    first_choice: str | None = None  # Whisper's most probable language of all, when `expect` picked another


def whisper_token(language: str, override: str | None = None) -> str:
    """The Whisper language token to decode `language` with; Uyghur has none of its own."""
    if override:
        return override
    if language in languages():
        return language
    raise ModelMissingError(
        f"Whisper has no '{language}' language token, so no stock Whisper model can transcribe it. "
        f"Use a model fine-tuned for it and name the token it was trained over, e.g. "
        f"`testimony run VIDEO --language {language} --asr-model PATH/TO/MODEL.pt --whisper-token uz`."
    )




Reroute = Callable[[str], "tuple[Any, AsrOptions] | None"]
# (model, audio, voiced regions) -> Whisper's probability of each language, averaged over the voiced
# windows (an engine's `language_totals`); the pick among them is `asr.langid.pick`'s
Detect = Callable[[Any, Audio, list[SpeechRegion]], "dict[str, float]"]
# (model, audio of one chunk, clip_timestamps within it, Whisper token, options) -> raw segments
Decode = Callable[[Any, np.ndarray, list[float], str, AsrOptions], list[dict]]
# (language, the options decoding runs with) -> the token `decode` gets
Token = Callable[[str, AsrOptions], str]


def _whisper_token(language: str, options: AsrOptions) -> str:
    return whisper_token(language, options.whisper_token)


@dataclass
class Plan:
    """What to decode and with what, decided before any decoding; shared by both engines."""

    model: Any
    options: AsrOptions
    speech: list[SpeechRegion]
    language: str | None
    detected: str | None
    probability: float | None
    first_choice: str | None = None  # the unrestricted pick, when it differs from `detected`


def plan(model: Any, audio: Audio, options: AsrOptions, *, detect: Detect,
         reroute: Reroute | None = None, checkpoint: Checkpoint | None = None) -> Plan:
    """Voiced regions, then the language (given, or voted with `detect`), then the model its route wants.

    Regions and language are checkpointed: a resumed run decodes exactly what the killed one planned.
    """
    checkpoint = checkpoint or Checkpoint(None)
    if saved := checkpoint.find("plan"):
        speech = [SpeechRegion(a, b) for a, b in saved[-1]["speech"]]
        detected, probability = saved[-1]["detected"], saved[-1]["probability"]
        first = saved[-1].get("first_choice")
    else:
        source = as_source(audio)
        speech = speech_regions(source) if options.vad else [SpeechRegion(0.0, duration(source))]
        detected = probability = first = None
        if options.language == "auto":
            totals = detect(model, source, speech)
            detected, probability = pick(totals, options.expect)
            first = pick(totals)[0] if pick(totals)[0] != detected else None
        checkpoint.add("plan", speech=[[r.start, r.end] for r in speech], detected=detected,
                       probability=probability, **({"first_choice": first} if first else {}))
    if options.language != "auto":
        return Plan(model, options, speech, options.language, None, None)
    if detected and reroute and (routed := reroute(detected)):
        model, options = routed
    return Plan(model, options, speech, detected, detected, probability, first)


def transcribe_with(model: Any, audio: Audio, options: AsrOptions, *, detect: Detect, decode: Decode,
                    progress: bool = False, reroute: Reroute | None = None,
                    checkpoint: Checkpoint | None = None, token: Token | None = None) -> AsrResult:
    """Plan, then decode chunk by chunk (`vad.decode_chunks`), skipping chunks the checkpoint holds.
    `token` gives the language token for the decoding options (Whisper's by default; "" for none)."""
    source, checkpoint = as_source(audio), checkpoint or Checkpoint(None)
    chosen = plan(model, source, options, detect=detect, reroute=reroute, checkpoint=checkpoint)
    model, options, speech, language = chosen.model, chosen.options, chosen.speech, chosen.language
    detected, probability = chosen.detected, chosen.probability
    if not speech or language is None:
        return AsrResult([], language, detected, probability, None, speech, first_choice=chosen.first_choice)

    token = (token or _whisper_token)(language, options)
    chunks = decode_chunks(speech, source)
    done = {entry["index"]: entry["segments"] for entry in checkpoint.find("group")
            if entry["index"] < len(chunks) and [entry["start"], entry["end"]] == [chunks[entry["index"]].start,
                                                                                 chunks[entry["index"]].end]}
    raw: list[dict] = []
    for index, chunk in enumerate(tqdm(chunks, disable=not progress, unit="chunk", leave=False)):
        if index not in done:  # a chunk is reused only if the checkpoint holds exactly this stretch
            done[index] = _decode_chunk(source, chunk, lambda piece, clips: _decode_guarded(
                decode, model, piece, clips, token, options))
            checkpoint.add("group", index=index, start=chunk.start, end=chunk.end, segments=done[index])
        raw += done[index]
    unprompted = sum(any(item.get("unprompted") for item in segments) for segments in done.values())
    return AsrResult(_segments(raw, speech), language, detected, probability, token or None, speech, unprompted,
                     chosen.first_choice)


def _decode_guarded(decode: Decode, model: Any, piece: np.ndarray, clips: list[float], token: str,
                    options: AsrOptions) -> list[dict]:
    """Decode with the glossary prompt; if the prompt leaked into the text, decode again without it."""
    raw = decode(model, piece, clips, token, options)
    if not options.prompt or not leaked(raw, options.prompt):
        return raw
    return [{**item, "unprompted": True} for item in decode(model, piece, clips, token, replace(options, prompt=None))]


def _decode_chunk(source: AudioSource, chunk: SpeechRegion,
                  decode: Callable[[np.ndarray, list[float]], list[dict]]) -> list[dict]:
    """Read only this chunk's audio, decode it, and put its times back on the recording's clock."""
    first = int(chunk.start * SAMPLE_RATE / HOP) * HOP
    last = min(source.samples, math.ceil(chunk.end * SAMPLE_RATE / HOP) * HOP)
    piece = source.read_samples(first, last)
    offset = first / SAMPLE_RATE
    clips = clip_timestamps([SpeechRegion(chunk.start - offset, chunk.end - offset)], len(piece))
    if not clips:
        return []
    return [_shifted(item, offset) for item in decode(piece, clips)]


def _shifted(item: dict, offset: float) -> dict:
    """The fields `_segments` reads, as plain JSON numbers, `offset` seconds later."""
    out = {"text": item["text"], "start": float(item["start"]) + offset, "end": float(item["end"]) + offset,
           "avg_logprob": float(item["avg_logprob"]), "no_speech_prob": float(item["no_speech_prob"]),
           "compression_ratio": float(item["compression_ratio"])}
    if item.get("temperature") is not None:
        out["temperature"] = float(item["temperature"])
    if item.get("unprompted"):
        out["unprompted"] = True
    if item.get("words") is not None:
        out["words"] = [{"start": float(w["start"]) + offset, "end": float(w["end"]) + offset,
                         "word": w["word"], "probability": float(w["probability"])} for w in item["words"]]
    return out






def chunk_seed(audio: np.ndarray, clips: list[float]) -> int:
    """The seed of one chunk's fallback sampling, from what identifies it: its samples and clip times.

    Nothing else (the order of chunks, what the process decoded before, the wall clock) can change
    the draws, so a resumed run or another machine gets the segments the first run got.
    """
    digest = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    digest.update(json.dumps([round(c, 3) for c in clips]).encode())
    return int.from_bytes(digest.digest()[:4], "little")  # 32 bits: CTranslate2 takes an unsigned int








def _segments(raw: list[dict], speech: list[SpeechRegion]) -> list[Segment]:
    segments: list[Segment] = []
    previous = None
    for item in raw:
        text = item["text"].strip()
        if not text:
            continue
        words = None
        if "words" in item:
            words = [Word(round(w["start"], 3), round(w["end"], 3), w["word"], round(w["probability"], 4))
                     for w in item["words"]]
        avg_logprob, compression = segment_confidence(item, text, words)
        seg = Segment(
            id=len(segments),
            start=round(float(item["start"]), 3),
            end=round(float(item["end"]), 3),
            text=text,
            avg_logprob=round(avg_logprob, 4),
            no_speech_prob=round(float(item["no_speech_prob"]), 4),
            compression_ratio=round(compression, 4),
            words=words,
            temperature=item.get("temperature"),
        )
        if seg.avg_logprob < LOGPROB_THRESHOLD or seg.no_speech_prob > NO_SPEECH_THRESHOLD:
            seg.flag(LOW_CONFIDENCE)
        repeated = bool(segments) and previous == text  # as decoded, before any cut
        if (seg.compression_ratio > COMPRESSION_RATIO_THRESHOLD or repeated
                or _voiced_fraction(seg, speech) < 0.2):
            seg.flag(POSSIBLE_HALLUCINATION)
        if seg.compression_ratio > COMPRESSION_RATIO_THRESHOLD:  # a loop the fallback did not cure
            cut_loop(seg)
        segments.append(seg)
        previous = text
    return segments


def segment_confidence(item: dict, text: str, words: list[Word] | None) -> tuple[float, float]:
    """(mean log-probability, compression ratio) of this segment alone.

    The engines give both per 30 s decoding window, the same for every sentence in it. The words
    carry their own probabilities (each the mean of its tokens', from the engine's alignment pass),
    so the log-probability is theirs; the compression ratio is Whisper's measure (bytes over zlib's
    bytes) on the segment's own text. Without word timestamps the window's figure is all there is.
    `no_speech_prob` stays the window's: it is the probability of the window having no speech.
    """
    if words:
        avg_logprob = sum(math.log(max(w.probability, 1e-6)) for w in words) / len(words)
    else:
        avg_logprob = float(item["avg_logprob"])
    raw = text.encode("utf-8")
    return avg_logprob, len(raw) / len(zlib.compress(raw))


def _voiced_fraction(seg: Segment, speech: list[SpeechRegion]) -> float:
    length = seg.end - seg.start
    if length <= 0:
        return 1.0
    overlap = sum(max(0.0, min(seg.end, r.end) - max(seg.start, r.start)) for r in speech)
    return overlap / length


