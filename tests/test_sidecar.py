"""A sidecar beside a video states what the team knows (language, speakers, names, descriptive fields);
`testimony run` reads it, the transcript and custody keep it, and a broken one stops the video."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.archive import custody
from pipeline.run.sidecar import SidecarError, read_sidecar
from pipeline.run.steps import routing_warning

from . import media_factory as mf

TINY_FLAGS = ["--no-word-timestamps", "--no-fallback"]  # random weights: run the machinery, quickly


@pytest.fixture
def video(media, tmp_path) -> Path:
    return mf.video_from_audio(media / "kk.wav", tmp_path / "witness one.mp4", lead_silence=0.5)


def _run(video: Path, archive: Path, model: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", "run", str(video), "--out", str(archive),
                           "--asr-model", str(model), "--no-translate", *TINY_FLAGS, *extra],
                          capture_output=True, text=True)


def test_run_takes_the_language_and_keeps_the_sidecar(video, tiny_whisper, tmp_path):
    content = {"language": "Kazakh", "speakers": 2, "speaker_names": {"S1": "Interviewer"},
               "glossary": ["Қарағанды"], "place": "Almaty", "recorded": "2019-05-02", "consent": "public"}
    sidecar = video.with_name(video.name + ".json")
    sidecar.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    archive = tmp_path / "archive"
    done = _run(video, archive, tiny_whisper)
    assert done.returncode == 0, done.stdout + done.stderr
    (bundle,) = [p for p in archive.iterdir() if (p / "transcript.json").is_file()]
    data = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert data["language"] == "kk" and data["detected_language"] is None, "stated, not detected"
    assert data["sidecar"]["sha256"] == hashlib.sha256(sidecar.read_bytes()).hexdigest()
    assert data["sidecar"]["content"]["place"] == "Almaty" and data["sidecar"]["content"]["language"] == "kk"
    sha = data["source"]["sha256"]
    logged = [e for e in custody.read(archive, sha) if e.get("name") == "sidecar"]
    assert logged and logged[0]["sidecar_sha256"] == data["sidecar"]["sha256"]
    assert logged[0]["content"]["consent"] == "public"


@pytest.mark.parametrize("text, message", [
    ("{broken", "not valid UTF-8 JSON"),
    ('["ug"]', "expected a JSON object"),
    ('{"language": "klingon"}', "unknown language"),
    ('{"speakers": "two"}', "'speakers' must be a int"),
    ('{"speakers": 0}', "between 1 and 20"),
    ('{"glossary": [""]}', "glossary is a list of spellings"),
])
def test_a_broken_sidecar_stops_the_video_and_names_itself(video, tiny_whisper, tmp_path, text, message):
    sidecar = video.with_name(video.name + ".json")
    sidecar.write_text(text, encoding="utf-8")
    with pytest.raises(SidecarError, match=message):
        read_sidecar(video)
    archive = tmp_path / "archive"
    done = _run(video, archive, tiny_whisper)
    assert done.returncode == 1 and str(sidecar) in done.stdout and message.split()[0] in done.stdout
    assert not [p for p in archive.glob("*/transcript.json")], "nothing was decoded"


def test_a_neighbour_of_a_routed_language_is_not_taken_silently():
    warning = routing_warning("uz")
    assert "inbox/ug/" in warning and "--language ug" in warning and "'uz'" in warning
    assert "inbox/kk/" in routing_warning("ky")
    assert routing_warning("kk") is None and routing_warning("ru") is None and routing_warning("fr") is None


def test_uyghur_detected_as_something_else_is_not_taken_silently(media, tiny_whisper, converted_base, tmp_path,
                                                                 capsys):
    """Real base on the Uyghur clip under auto, with a Uyghur model installed: Whisper answers some other
    language (it has no Uyghur class), and the transcript says how to route it instead."""
    from pipeline.cli.main import main

    assert main(["models", "import", str(tiny_whisper), "--language", "ug", "--whisper-token", "uz",
                 "--name", "ug-tiny"]) == 0
    shutil.copy(converted_base, config.whisper_dir() / "base.pt")  # the auto route's detector
    video = mf.video_from_audio(media / "ug.wav", tmp_path / "uyghur in the inbox.mp4", lead_silence=0.5)
    capsys.readouterr()
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), "--no-translate", *TINY_FLAGS]) == 0
    data = json.loads(next((tmp_path / "archive").glob("*/transcript.json")).read_text(encoding="utf-8"))
    assert data["detected_language"] in ("kk", "ru", "en"), "picked among the expected (--expect's default)"
    assert data["models"]["asr"]["name"] != "ug-tiny"
    warning = " ".join(data["warnings"])
    assert "inbox/ug/" in warning and f"picked {data['detected_language']!r} among the expected" in warning
    assert "Whisper's first choice was" in warning, "what Whisper heard first is not hidden by --expect"


def test_a_uyghur_sidecar_takes_the_uyghur_route(media, tiny_whisper, tmp_path, capsys):
    """Whisper cannot detect Uyghur: the sidecar says it, and the imported Uyghur model decodes it."""
    from pipeline.cli.main import main

    assert main(["models", "import", str(tiny_whisper), "--language", "ug", "--whisper-token", "uz",
                 "--name", "ug-tiny"]) == 0
    video = mf.video_from_audio(media / "ug.wav", tmp_path / "uyghur.mp4", lead_silence=0.5)
    video.with_name(video.name + ".json").write_text('{"language": "ug"}', encoding="utf-8")
    capsys.readouterr()
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), "--no-translate", *TINY_FLAGS]) == 0
    bundle = Path(capsys.readouterr().out.split("\t")[0])
    data = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert data["language"] == "ug" and data["models"]["asr"]["name"] == "ug-tiny"
    assert data["models"]["asr"]["whisper_token"] == "uz"


def test_glossary_near_misses_are_flagged_never_replaced():
    from pipeline.stages.glossary import Glossary, flag, near_misses
    from pipeline.transcript import Segment, Source, Transcript

    assert near_misses("Мен Карағандыда тұрдым", "Қарағанды") == ["Карағандыда"], "a letter off, inflected"
    assert near_misses("Мен Қарағандыда тұрдым", "Қарағанды") == [], "the name itself, with a suffix"
    assert near_misses("he was taken to Urumchi camp", "Ürümchi") == ["Urumchi"]
    assert near_misses("he was taken to Ürümchi", "Ürümchi") == []
    assert near_misses("Abdurehim Heyit sang", "Abdurehim Heyit") == []
    assert near_misses("Abdurahim Heyt sang", "Abdurehim Heyit") == ["Abdurahim Heyt"]
    assert near_misses("ил ли", "Или") == [], "names of 3 letters or fewer are never guessed at"

    segments = [Segment(0, 0.0, 1.0, "taken to Urumchi"), Segment(1, 1.0, 2.0, "nothing here")]
    transcript = Transcript(Source("v.mp4", "0" * 64, 1, 2.0, {}), "en", "en", 1.0, {}, segments)
    flag(transcript, Glossary(("Ürümchi",)))
    first, second = transcript.segments
    assert first.text == "taken to Urumchi", "never replaced"
    assert "glossary_match" in first.flags and first.suggestions == [{"heard": "Urumchi", "glossary": "Ürümchi"}]
    assert not second.flags and second.suggestions is None
    assert transcript.glossary["entries"] == 1 and len(transcript.glossary["sha256"]) == 64


def test_run_flags_with_the_archive_run_and_sidecar_glossaries(video, tiny_whisper, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "glossary.txt").write_text("# the archive's names\nҚарағанды\n", encoding="utf-8")
    run_file = tmp_path / "names.txt"
    run_file.write_text("Ürümchi\n", encoding="utf-8")
    video.with_name(video.name + ".json").write_text('{"language": "kk", "glossary": ["Abdurehim Heyit"]}',
                                                     encoding="utf-8")
    done = _run(video, archive, tiny_whisper, "--glossary", str(run_file))
    assert done.returncode == 0, done.stdout + done.stderr
    (bundle,) = [p for p in archive.iterdir() if (p / "transcript.json").is_file()]
    data = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert data["glossary"]["entries"] == 3
    missing = _run(video, archive, tiny_whisper, "--glossary", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "no such glossary file" in missing.stderr
