"""The glossary steers the decoder: names go into Whisper's prompt within its budget, a prompt that leaks
into the text is caught and the chunk decoded again without it, and the prompt is part of the options,
so a changed glossary makes a bundle stale. The real runs use Whisper base on both engines.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.asr import core
from pipeline.asr.core import AsrOptions
from pipeline.asr.prompt import PROMPT_TOKENS, SEPARATOR, glossary_prompt, leaked, token_count
from pipeline.cli.main import main

from . import media_factory as mf

NAMES = ["Gulbahar", "Urumqi", "Nurlan", "Ghulja", "Sauytbay", "Aqtoghay"]


def test_the_prompt_holds_whole_names_within_the_budget():
    many = [f"Тұрсынай{n} Әлімова" for n in range(400)]
    prompt = glossary_prompt(many)
    kept = prompt.split(SEPARATOR)
    assert token_count(prompt) <= PROMPT_TOKENS < token_count(SEPARATOR.join(many[:len(kept) + 1]))
    assert kept == many[:len(kept)], "whole entries, in the glossary's order"
    assert glossary_prompt([]) is None


def test_a_leaked_prompt_is_recognised():
    prompt = SEPARATOR.join(["Ghulja", "Тұрсынай", "تۇرسۇناي"])
    assert leaked([{"text": " ghulja, тұрсынай, and so on"}], prompt)  # the prompt's own list, copied
    assert leaked([{"text": "Тұрсынай Тұрсынай Тұрсынай"}], prompt)  # a loop on one name
    assert leaked([{"text": "Seirandol, Ghulja, Toldus, Attila, Kamp, Тұрсынай, Heiwa"}], prompt)  # imitated
    assert leaked([{"text": "Seirandol, Ghulja, Toldus,"}, {"text": "Kamp, Тұрсынай, Heiwa,"}], prompt)  # in pieces
    assert not leaked([{"text": "My sister Тұрсынай lived in Ghulja."}], prompt)
    assert not leaked([{"text": "Тұрсынай, her son, and the neighbours from Ghulja left."}], prompt)


def test_a_chunk_whose_text_shows_the_prompt_is_decoded_again_without_it():
    """At the engine's decode seam (both engines' decode run for real below): the first decode
    copies the prompt, the second, without a prompt, is what the transcript keeps."""
    calls = []

    def decode(_model, _audio, _clips, _token, options):
        calls.append(options.prompt)
        text = options.prompt if options.prompt else "He was taken in Ghulja."
        return [{"text": text, "start": 0.0, "end": 2.0, "avg_logprob": -0.2, "no_speech_prob": 0.1,
                 "compression_ratio": 1.1}]

    options = AsrOptions(language="en", prompt=SEPARATOR.join(NAMES), word_timestamps=False)
    audio = np.zeros(16000 * 3, dtype=np.float32)
    result = core.transcribe_with(None, audio, replace_vad(options), detect=None, decode=decode)
    assert calls == [options.prompt, None]
    assert [s.text for s in result.segments] == ["He was taken in Ghulja."] and result.unprompted_chunks == 1


def replace_vad(options: AsrOptions) -> AsrOptions:
    """No VAD over the silent test array: the whole of it is one region to decode."""
    from dataclasses import replace

    return replace(options, vad=False)


@pytest.fixture(scope="module")
def names_video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("names")
    speech = mf.speak("My aunt Gulbahar was held in Urumqi for eleven months.", "en", root / "names.wav")
    return mf.video_from_audio(speech, root / "names.mp4", lead_silence=0.5)


def _transcript(archive: Path) -> dict:
    return json.loads(next(archive.glob("*/transcript.json")).read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["whisper", "faster-whisper"])
def test_the_glossary_reaches_the_decoder_and_its_change_makes_the_bundle_stale(
        names_video, tmp_path, converted_base, ct2_base, engine, capsys):
    model = str(converted_base) if engine == "whisper" else str(ct2_base)
    glossary = tmp_path / "names.txt"
    glossary.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    archive = tmp_path / "archive"
    run = ["run", str(names_video), "--out", str(archive), "--language", "en", "--asr-model", model,
           "--engine", engine]
    assert main([*run, "--glossary", str(glossary)]) == 0
    data = _transcript(archive)
    assert data["models"]["asr"]["options"]["prompt"] == SEPARATOR.join(NAMES)
    heard = " ".join(s["text"] for s in data["segments"])
    assert "Gulbahar" in heard and "Urumqi" in heard, heard  # spelled as the glossary spells them
    capsys.readouterr()

    assert main([*run, "--glossary", str(glossary)]) == 0
    assert capsys.readouterr().out.strip().endswith("reused")
    glossary.write_text("\n".join(NAMES[:3]) + "\n", encoding="utf-8")
    assert main([*run, "--glossary", str(glossary)]) == 0
    assert capsys.readouterr().out.strip().endswith("done"), "another glossary: decoded again"
    assert _transcript(archive)["models"]["asr"]["options"]["prompt"] == SEPARATOR.join(NAMES[:3])
    assert main([*run, "--glossary", str(glossary), "--no-glossary-prompt"]) == 0
    assert _transcript(archive)["models"]["asr"]["options"]["prompt"] is None
    assert main([*run]) == 0 and capsys.readouterr().out.strip().endswith("reused"), \
        "no glossary and no prompt share the key bundles had before the prompt existed"
