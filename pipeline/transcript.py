"""The linked transcript: the source of truth every other output is rendered from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "testimony.transcript/1"

# Segment flags
LOW_CONFIDENCE = "low_confidence"
POSSIBLE_HALLUCINATION = "possible_hallucination"
UNTRANSLATED = "untranslated"
GLOSSARY_MATCH = "glossary_match"  # a word near a glossary name (`pipeline.stages.glossary`)
# Doubts about whether the text is what was said: a person who checked the segment against the
# recording has answered them, so the record after review no longer raises them.
ANSWERED_BY_CHECK = (LOW_CONFIDENCE, POSSIBLE_HALLUCINATION, GLOSSARY_MATCH)
# Transcript flags
TRUNCATED = "truncated"


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


# Segment fields stored only when set, so transcripts (and revisions) made before they existed read and
# write byte for byte as they did.
WRITTEN_WHEN_SET = ("cut", "spellings")


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    translation: str | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    flags: list[str] = field(default_factory=list)
    words: list[Word] | None = None
    temperature: float | None = None  # the decoding temperature kept (above 0: a seeded fallback sample)
    # Set by review (`pipeline.review`); a machine draft leaves them as they are here, but for `speaker`.
    speaker: str | None = None  # S1, S2, … in order of first appearance (`pipeline.speakers`), or a reviewer's
    checked: bool = False  # a person who speaks the language checked this segment
    english_source: str | None = None  # "machine", "edited" (a person changed it) or "written" (from scratch)
    suggestions: list[dict[str, str]] | None = None  # glossary near-misses: {"heard": ..., "glossary": ...}
    # A loop cut off the text by the ASR (`asr.loops`): {"text", "words", "repeats", "reason"}; written
    # only when there is one, so a transcript without cuts reads and writes as it did before.
    cut: dict[str, Any] | None = None
    # The glossary's English spellings of the names the text says, as the translation kept them
    # (`stages.spellings`): {"glossary": name, "english": spelling, "how": kept|restored|steered|missing}.
    spellings: list[dict[str, str]] | None = None

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)

    def standing_flags(self) -> list[str]:
        """The flags that still hold for this revision of the segment, which every rendering shows.

        `flags` keeps what the machine said (revision 0 and the history keep it too); a person's
        check answers the machine's doubts about the text, and English a person wrote is a translation.
        """
        answered = set(ANSWERED_BY_CHECK) if self.checked else set()
        if self.translation:
            answered.add(UNTRANSLATED)
        return [f for f in self.flags if f not in answered]


@dataclass
class Source:
    file_name: str
    sha256: str
    size: int
    duration: float | None
    audio_track: dict[str, Any]
    decoded_duration: float | None = None


@dataclass
class Transcript:
    source: Source
    language: str | None  # the language used to decode and translate (route language, e.g. "ug")
    detected_language: str | None
    language_probability: float | None
    models: dict[str, Any]
    segments: list[Segment]
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: str = ""
    schema: str = SCHEMA
    sidecar: dict[str, Any] | None = None  # the video's sidecar: its file name, SHA-256 and content
    glossary: dict[str, Any] | None = None  # the glossary the run flagged near-misses of: entries, SHA-256
    speaker_names: dict[str, str] | None = None  # label -> name from --speaker-names and the sidecar (these win)

    @property
    def id(self) -> str:
        return self.source.sha256[:12]

    @property
    def needs_translation(self) -> bool:
        return self.language not in (None, "en")

    @property
    def has_translation(self) -> bool:
        return any(seg.translation for seg in self.segments)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for seg in data["segments"]:
            for name in WRITTEN_WHEN_SET:
                if seg[name] is None:
                    del seg[name]
        return {"schema": data.pop("schema"), **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transcript":
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported transcript schema {data.get('schema')!r} (expected {SCHEMA})")
        segments = []
        for raw in data["segments"]:
            raw = dict(raw)
            words = raw.pop("words", None)
            segments.append(Segment(**raw, words=[Word(**w) for w in words] if words is not None else None))
        fields = {k: v for k, v in data.items() if k not in ("segments", "source")}
        return cls(source=Source(**data["source"]), segments=segments, **fields)

    @classmethod
    def load(cls, path: str | Path) -> "Transcript":
        return cls.from_dict(read_json(path))


def read_json(path: str | Path) -> dict[str, Any]:
    """The one reader of a `transcript.json`: its JSON as stored, the schema not checked.

    For callers that need a field or two (the source's SHA-256 or name, the options key) without
    building a Transcript; `Transcript.load` reads through it. Raises OSError, or ValueError for text
    that is not UTF-8 JSON.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))
