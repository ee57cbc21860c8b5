"""A glossary line's English spelling (`Тұрсын = Tursun`) kept in the machine's English on every MT route
(`pipeline.stages.spellings`), with tiny random models of each format: the model alone never writes the
spelling; with the mechanism every segment that says the name has it, and the transcript says how."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline import config, errors
from pipeline.stages import glossary, spellings
from pipeline.stages.translate import install_package, translate_keeping, translate_texts
from pipeline.store.hf_to_argos import import_translation_model
from pipeline.transcript import Segment, Source, Transcript

from .tiny_models.argos import build_tiny_argos_package, udhr_column
from .tiny_models.madlad import madlad_ct2
from .tiny_models.mt import build_m2m

SPELLED = {"Тұрсын": "Tursun"}
# The name said plainly, inflected (Tursun's), and not at all.
TEXTS = [f"Тұрсын {line}" for line in udhr_column("kk")[:3]] + \
        [f"{line} Тұрсынның үйі" for line in udhr_column("kk")[3:5]] + udhr_column("kk")[5:7]
SAYS_IT = [True] * 5 + [False] * 2


def test_glossary_lines_give_english_spellings_and_old_files_read_as_before(tmp_path):
    old = tmp_path / "old.txt"
    old.write_text("Тұрсын\nАлматы  # the city\n", encoding="utf-8")
    names = glossary.load(tmp_path, str(old), None)
    assert names.entries == ("Тұрсын", "Алматы") and names.english == ()
    assert names.record() == {"entries": 2, "sha256": hashlib.sha256("Тұрсын\nАлматы".encode()).hexdigest()}
    new = tmp_path / "new.txt"
    new.write_text("Тұрсын =  Tursun\nАлматы\n", encoding="utf-8")
    names = glossary.load(tmp_path, str(new), ["Алматы = Almaty"])  # the video's sidecar adds one
    assert names.entries == ("Тұрсын", "Алматы"), "the names flag and prompt as before"
    assert names.record()["english"] == {"Тұрсын": "Tursun", "Алматы": "Almaty"}
    bad = tmp_path / "bad.txt"
    bad.write_text("= Tursun\n", encoding="utf-8")
    with pytest.raises(errors.TestimonyError, match=f"^{bad}: glossary line '= Tursun': write the name, then"):
        glossary.load(tmp_path, str(bad), None)


def test_names_are_found_inflected_and_near_misses_restored():
    assert spellings.required(["Тұрсынның үйі", "ТҰРСЫН келді", "Тұрсекең"], SPELLED) == \
        [[("Тұрсын", "Tursun")], [("Тұрсын", "Tursun")], []]
    assert spellings.restore("and tursyn's house", "Tursun") == "and Tursun's house"
    assert spellings.restore("and Turgenev's house", "Tursun") is None, "too far from the spelling"
    assert spellings.present("Tursun's", "Tursun's house") and not spellings.present("Tursun", "Atursun")


def _argos() -> None:
    install_package(build_tiny_argos_package(config.argos_dir().parent / "build", "kk", "en"))


def _nllb() -> None:
    import_translation_model(build_m2m(config.argos_dir().parent / "nllb", "nllb"), from_codes=["kk"])


def _madlad() -> None:
    import_translation_model(madlad_ct2(config.argos_dir().parent / "madlad-ct2"), from_codes=["kk"])


@pytest.mark.parametrize("install", [_argos, _nllb, _madlad], ids=["argos", "nllb", "madlad"])
def test_every_route_keeps_the_glossary_spelling(install):
    install()
    plain = translate_texts(TEXTS, "kk")
    assert not any("Tursun" in english for english in plain), "the random model alone never writes it"
    kept, notes = translate_keeping(TEXTS, "kk", english=SPELLED)
    for says, english, before, note in zip(SAYS_IT, kept, plain, notes):
        if not says:
            assert (english, note) == (before, []), "a segment without the name is the model's, untouched"
            continue
        assert spellings.present("Tursun", english), english
        assert note == [{"glossary": "Тұрсын", "english": "Tursun", "how": "steered"}]
        head = english.split("Tursun", 1)[0].strip()
        assert before.startswith(head), "up to the name, the English is the model's own"
    assert translate_keeping(TEXTS, "kk", english=SPELLED) == (kept, notes), "the same every time"


def test_the_transcript_records_where_the_spelling_came_from(tmp_path):
    from pipeline.run.steps import stage_translate

    _madlad()
    transcript = _transcript([Segment(i, i, i + 1, text) for i, text in enumerate(TEXTS)])
    names = glossary.Glossary(("Тұрсын",), (("Тұрсын", "Tursun"),))
    glossary.flag(transcript, names)
    stage_translate(transcript)
    again = Transcript.from_dict(json.loads(transcript.to_json()))
    assert again.glossary["english"] == {"Тұрсын": "Tursun"}
    for says, seg in zip(SAYS_IT, again.segments):
        assert seg.spellings == ([{"glossary": "Тұрсын", "english": "Tursun", "how": "steered"}] if says else None)
        assert ("Tursun" in seg.translation) == says
    plain = json.loads(_transcript([Segment(0, 0, 1, "x")]).to_json())
    assert "spellings" not in plain["segments"][0], "a transcript without spellings reads as before"


def _transcript(segments: list[Segment]) -> Transcript:
    source = Source(file_name="a.mp4", sha256="0" * 64, size=1, duration=1.0, audio_track={})
    return Transcript(source=source, language="kk", detected_language=None, language_probability=None, models={},
                      segments=segments)


def test_the_editors_machine_english_keeps_the_spelling_too():
    """The review editor's "machine English" for an edited original uses the run's spellings."""
    from pipeline.review.server import machine_english

    _madlad()
    offered = machine_english("kk", TEXTS[0], {"Тұрсын": "Tursun"})
    assert "Tursun" in offered["translation"] and "Tursun" not in machine_english("kk", TEXTS[0])["translation"]


def test_a_changed_spelling_makes_the_bundles_translation_stale(media, tiny_whisper, tmp_path):
    """Same glossary: the bundle is reused; another English spelling: translated again, and recorded."""
    from . import media_factory as mf
    from .test_madlad import cli
    from .test_pipeline import TINY_FLAGS

    _madlad()
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    words = tmp_path / "glossary.txt"
    args = ["run", str(video), "--out", str(tmp_path / "archive"), "--language", "kk", "--asr-model",
            str(tiny_whisper), "--glossary", str(words), "--no-diarize", *TINY_FLAGS]
    statuses = []
    for spelling in ("Tursun", "Tursun", "Tursyn"):
        words.write_text(f"Тұрсын = {spelling}\n", encoding="utf-8")
        bundle, status = cli(*args).stdout.strip().splitlines()[-1].split("\t")[:2]
        statuses.append(status)
    assert statuses == ["done", "reused", "done"]
    data = json.loads((Path(bundle) / "transcript.json").read_text(encoding="utf-8"))
    assert data["glossary"]["english"] == {"Тұрсын": "Tursyn"}


TWO = {"Тұрсын": "Tursun", "Алматы": "Almaty"}


@pytest.mark.parametrize("install", [_argos, _nllb, _madlad], ids=["argos", "nllb", "madlad"])
def test_a_segment_that_says_two_names_keeps_both_spellings(install):
    """Steering the second name must not trade away the first: each segment below says both."""
    install()
    texts = [f"Тұрсын {line} Алматыда" for line in udhr_column("kk")[:5]]
    kept, notes = translate_keeping(texts, "kk", english=TWO)
    for english, note in zip(kept, notes):
        assert spellings.present("Tursun", english) and spellings.present("Almaty", english), english
        assert [(n["english"], n["how"]) for n in note] == [("Tursun", "steered"), ("Almaty", "steered")]
