"""The run options, once: the `run` and `eval` flags, the Prefect form, and `RunOptions` they make.

Each option is a flat, JSON-friendly setting (what a deployment form in the Prefect UI can hold) with
its default, its flag and its help. The parsers and the flow's parameters are made from this table,
so adding an option is one entry here and one use in `RunOptions.from_flat`.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from pipeline.asr.core import ENGINES, AsrOptions

DEVICES = ("cpu", "cuda")
EXPECT_DEFAULT = "kk,ru,en"  # `--expect`: right on 27 of 31 real Kazakh clips, not 20 (bench/results-langid.md)


def language_code(value: str) -> str:
    """Accept codes and English names in any case: `kk`, `KK`, `kazakh`, `auto`."""
    from pipeline.asr.languages import codes_by_name, languages

    value = value.strip().lower()
    if value == "auto" or value in languages() or value == "ug":
        return value
    if value in codes_by_name():
        return codes_by_name()[value]
    if value == "uyghur":
        return "ug"
    raise argparse.ArgumentTypeError(f"unknown language {value!r}: use a code such as kk, ug, en, or auto")


def whisper_token(value: str) -> str:
    """A Whisper language token, checked against Whisper's own list."""
    from pipeline.asr.languages import languages

    if value not in languages():
        raise argparse.ArgumentTypeError(f"{value!r} is not a Whisper language token (e.g. kk, uz, ru)")
    return value


def expected_languages(value: str | None) -> tuple[str, ...] | None:
    """`kk,ru,en` (codes or English names) as codes; empty or `any`: None, every language Whisper knows."""
    text = (value or "").strip().lower()
    if text in ("", "any", "all"):
        return None
    codes = [language_code(part) for part in filter(None, (p.strip() for p in text.split(",")))]
    if "auto" in codes:
        raise argparse.ArgumentTypeError("'auto' is not a language: list the expected ones, e.g. kk,ru,en")
    return tuple(dict.fromkeys(codes)) or None


def expected_text(value: str) -> str:
    """The flag's text, checked now (a typo fails before any work) and kept flat for the Prefect form."""
    expected_languages(value)
    return value


def speaker_count(value: str) -> int:
    """How many people speak: 1 to 20, as the sidecar's `speakers` allows."""
    if not value.strip().isdigit() or not 1 <= int(value) <= 20:
        raise argparse.ArgumentTypeError(f"{value!r}: give the number of speakers, 1 to 20")
    return int(value)


def parse_speaker_names(value: str | None) -> dict[str, str]:
    """`S1=Interviewer,S2=Witness` as {"S1": "Interviewer", "S2": "Witness"}; a malformed pair is an error."""
    names = {}
    for pair in filter(str.strip, (value or "").split(",")):
        label, sep, name = pair.partition("=")
        if not sep or not label.strip() or not name.strip():
            raise argparse.ArgumentTypeError(f"{pair.strip()!r}: give LABEL=Name pairs, e.g. S1=Interviewer,S2=Witness")
        names[label.strip()] = name.strip()
    return names


def speaker_names_text(value: str) -> str:
    """The flag's text, checked now (a typo fails before any work) and kept flat for the Prefect form."""
    parse_speaker_names(value)
    return value


@dataclass(frozen=True)
class Option:
    """One run option.

    name: the flat setting (a `RunOptions.from_flat` keyword and a Prefect flow parameter).
    flag: the command-line flag; a flag starting `--no-` turns off an option whose default is True.
    default: the value when neither the flag nor the form sets it.
    help: the flag's help, also the form field's description.
    annotation: the type Prefect's form shows and validates.
    parse: turns the flag's text into the value (argparse `type`), or None for text as it is.
    choices: the only values accepted, or None.
    commands: which commands take it (`eval` decides the language per clip, for one).
    """

    name: str
    flag: str
    default: Any
    help: str
    annotation: Any = str | None
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    commands: tuple[str, ...] = ("run", "eval")

    @property
    def switch(self) -> bool:
        return self.flag.startswith("--no-")


OPTIONS: tuple[Option, ...] = (
    Option("language", "--language", "auto", "language code of the speech (kk, ug, en, ...) or auto (default)",
           str, parse=language_code, commands=("run",)),
    Option("expect", "--expect", EXPECT_DEFAULT, "languages the archive holds, e.g. kk,ru,en: language "
           "detection picks the most probable of these (Uyghur, which Whisper cannot detect, is routed by "
           f"folder or sidecar); `any` for every language Whisper knows (default: {EXPECT_DEFAULT})",
           str | None, parse=expected_text),
    Option("asr_model", "--asr-model", None, "a Whisper name (tiny, base, small, ...), a model imported into "
           "the store, or a checkpoint path (default: the language's route; see `testimony models`)"),
    Option("whisper_token", "--whisper-token", None, "Whisper language token a fine-tuned model decodes "
           "with (e.g. uz for a Uyghur model trained over the Uzbek token)", parse=whisper_token),
    Option("audio_track", "--audio-track", None, "audio track to use, counted from 0 (default: the stream "
           "marked default)", int | None, parse=int, commands=("run",)),
    Option("translate_to_english", "--no-translate", True, "skip the English translation", bool),
    Option("beam_size", "--beam-size", None, "beam search width (default: greedy)", int | None, parse=int),
    Option("vad", "--no-vad", True, "decode the whole audio, silence included", bool),
    Option("word_timestamps", "--no-word-timestamps", True,
           "faster, but segment times rest on Whisper's coarser segment timestamps", bool),
    Option("temperature_fallback", "--no-fallback", True,
           "decode at temperature 0 only: fastest, no retry of repetitive or unsure windows", bool),
    Option("device", "--device", None, "default: CUDA when present", choices=DEVICES),
    Option("glossary", "--glossary", None, "a text file of names as the team spells them, one a line (with "
           "<archive>/glossary.txt and the sidecar's): the decoder is prompted with them, and near-misses are "
           "flagged glossary_match with the spelling",
           commands=("run",)),
    Option("glossary_prompt", "--no-glossary-prompt", True, "do not give the glossary's names to the decoder "
           "(Whisper's prompt before each window); they still flag near-misses", bool, commands=("run",)),
    Option("diarize", "--no-diarize", True, "no speaker labels: skip finding who speaks (S1, S2, ...)", bool),
    Option("speakers", "--speakers", None, "how many people speak (default: found from the voices, or the "
           "sidecar's speakers)", int | None, parse=speaker_count, commands=("run",)),
    Option("speaker_names", "--speaker-names", None, "names for the speaker labels, e.g. "
           "\"S1=Interviewer,S2=Witness\" (merged with the sidecar's speaker_names; these win)",
           parse=speaker_names_text, commands=("run",)),
    Option("speaker_encoder", "--speaker-encoder", "resemblyzer", "resemblyzer: the speaker encoder shipped in "
           "its wheel (default, Apache-2.0); or the path of an ONNX speaker model (16 kHz audio in, "
           "embeddings out)", str),
    Option("engine", "--engine", None, "whisper: openai-whisper, the reference; "
           "faster-whisper: CTranslate2, several times faster on CPU (int8), same regions, flags and "
           "transcript format; ctc: a CTC model (Omnilingual ASR, GigaAM) on onnxruntime, which cannot "
           "detect the language (default: the language's route, else whisper)", str | None, choices=ENGINES),
)


def named(names: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(names.items()))


def options_for(command: str) -> list[Option]:
    return [option for option in OPTIONS if command in option.commands]


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The table's flags for `command` on `parser`."""
    for option in options_for(command):
        if option.switch:
            parser.add_argument(option.flag, dest=option.name, action="store_false", help=option.help)
        else:
            parser.add_argument(option.flag, dest=option.name, default=option.default, type=option.parse,
                                choices=option.choices, help=option.help)


def settings(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The flat settings parsed from `command`'s flags, ready for `RunOptions.from_flat`."""
    return {option.name: getattr(args, option.name) for option in options_for(command)}


def flow_parameters(fixed: Iterable[inspect.Parameter], tail: Iterable[inspect.Parameter] = (), *,
                    return_annotation: Any = inspect.Signature.empty) -> inspect.Signature:
    """A flow's signature: `fixed` parameters, then every run option with its default, then `tail`."""
    table = [inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o.default,
                               annotation=o.annotation) for o in OPTIONS]
    return inspect.Signature([*fixed, *table, *tail], return_annotation=return_annotation)


@dataclass(frozen=True)
class RunOptions:
    asr: AsrOptions = field(default_factory=AsrOptions)
    audio_track: int | None = None
    translate: bool = True
    device: str | None = None  # None: CUDA when present, else CPU
    follow_routes: bool = True  # an auto-detected language is decoded with its route's model
    glossary: str | None = None  # a glossary file for this run (`stages.glossary`)
    glossary_prompt: bool = True  # the glossary also steers the decoder (`asr.prompt`), not only flags
    diarize: bool = True  # label segments with speakers (`pipeline.speakers`)
    speakers: int | None = None  # how many; None: found from the voices
    speaker_names: tuple[tuple[str, str], ...] = ()  # (label, name) pairs, sorted: hashable and keyed alike
    speaker_encoder: str = "resemblyzer"  # or the path of an ONNX speaker model
    named_engine: str | None = None  # --engine as given (None: the route's): a sidecar's language re-resolves
    archive: str | None = None  # whose own routes (models adapted on its witnesses) are followed; None: none

    @classmethod
    def from_flat(cls, *, language: str = "auto", asr_model: str | None = None, whisper_token: str | None = None,
                  audio_track: int | None = None, translate_to_english: bool = True,
                  beam_size: int | None = None, vad: bool = True, word_timestamps: bool = True,
                  temperature_fallback: bool = True, device: str | None = None,
                  engine: str | None = None, glossary: str | None = None,
                  glossary_prompt: bool = True, diarize: bool = True,
                  speakers: int | None = None, speaker_names: str | None = None,
                  speaker_encoder: str = "resemblyzer", expect: str | None = EXPECT_DEFAULT,
                  archive: str | Path | None = None) -> "RunOptions":
        """From the flat, JSON-friendly settings the CLI and the Prefect form both speak.

        An unnamed model or token comes from the language's route (`testimony models`); a language no
        installed model can do raises ModelMissingError naming the command that fixes it. `archive`: the
        archive the run writes to, whose own routes (to models adapted on its witnesses) win; no other
        archive's are ever followed.
        """
        from pipeline.store.routes import resolve_run

        follow_routes = asr_model is None  # a model the user named is used for every language
        named_engine = engine
        archive = str(Path(archive).resolve()) if archive is not None else None
        asr_model, whisper_token, engine = resolve_run(language, asr_model, whisper_token, engine, archive)
        asr = AsrOptions(model=asr_model, language=language, whisper_token=whisper_token,
                         beam_size=beam_size, vad=vad, word_timestamps=word_timestamps,
                         temperatures=AsrOptions.temperatures if temperature_fallback else (0.0,),
                         engine=engine, expect=expected_languages(expect) if language == "auto" else None)
        return cls(asr=asr, audio_track=audio_track, translate=translate_to_english, device=device,
                   named_engine=named_engine, archive=archive,
                   follow_routes=follow_routes, glossary=glossary or None,
                   glossary_prompt=glossary_prompt, diarize=diarize, speakers=speakers,
                   speaker_names=named(parse_speaker_names(speaker_names)),
                   speaker_encoder=speaker_encoder or "resemblyzer")

    def with_speakers(self, speakers: int | None, names: dict[str, str]) -> "RunOptions":
        """These options with a speaker count where they had none, and `names` under their own."""
        merged = named({**names, **dict(self.speaker_names)})
        return replace(self, speakers=self.speakers or speakers, speaker_names=merged)

    def key(self) -> str:
        """Digest of every option that changes the output; part of the cache key with the SHA-256."""
        data = {"asr": self.asr.to_dict(), "audio_track": self.audio_track, "translate": self.translate}
        if self.diarize:  # off, the key stays what bundles had before speakers
            data["speakers"] = {"speakers": self.speakers, "encoder": self.speaker_encoder}
        if self.speaker_names:
            data["speaker_names"] = self.speaker_names
        if data["asr"]["engine"] == "whisper":  # the default engine keeps the keys bundles had before engines
            del data["asr"]["engine"]
        if data["asr"]["prompt"] is None:  # no glossary: the keys bundles had before the prompt
            del data["asr"]["prompt"]
        if data["asr"]["expect"] is None or self.asr.language != "auto":  # nothing detected among them:
            del data["asr"]["expect"]  # the keys bundles had before `--expect`
        if self.asr.language == "auto" and self.follow_routes:  # which models the routes name matters
            from pipeline.store.routes import load_routes

            data["routes"] = {k: f"{v.engine}:{v.asr_model}" if v.engine else v.asr_model
                              for k, v in sorted(load_routes(self.archive).items())}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

