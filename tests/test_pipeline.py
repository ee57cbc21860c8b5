"""The whole path, video in and bundle out, on real ffmpeg, real Whisper inference and real Argos."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from pipeline import config
from pipeline.archive import bundle as bundle_module
from pipeline.archive.viewer import linked_video
from pipeline.asr.core import AsrOptions
from pipeline.cli.main import main
from pipeline.evaluation.devset import librivox
from pipeline.run.process import RunOptions, process_video
from pipeline.stages.translate import install_package
from pipeline.transcript import UNTRANSLATED, Transcript

from . import media_factory as mf
from .tiny_models.argos import build_tiny_argos_package

# Random weights make word-timestamp re-seeking and temperature sampling wander for minutes; the
# random model only has to run the real machinery, deterministically. Real-weight tests keep defaults.
TINY_FLAGS = ["--no-word-timestamps", "--no-fallback"]


def _options(model: Path, language: str = "kk", **kw) -> RunOptions:
    if "tiny-random" in str(model):
        asr = AsrOptions(model=str(model), language=language, word_timestamps=False, temperatures=(0.0,))
    else:
        asr = AsrOptions(model=str(model), language=language)
    return RunOptions(asr=asr, **kw)


@pytest.fixture
def kk_video(media, tmp_path) -> Path:
    return mf.video_from_audio(media / "kk.wav", tmp_path / "Куә сөзі 1.mp4", lead_silence=3.0,
                               tail_silence=2.0)


def test_bundle_without_translation_package(kk_video, converted_base, tmp_path):
    result = process_video(kk_video, tmp_path / "archive", _options(converted_base))
    assert result.status == "done"
    sha = hashlib.sha256(kk_video.read_bytes()).hexdigest()
    assert result.bundle.name.startswith(sha[:12] + "-")
    names = {p.name for p in result.bundle.iterdir()}
    assert names == {"transcript.json", "manifest.json", "index.html", "kk.srt", "kk.vtt", "kk.txt"}

    transcript = Transcript.load(result.bundle / "transcript.json")
    assert transcript.source.sha256 == sha
    assert transcript.source.file_name == "Куә сөзі 1.mp4"
    assert transcript.source.duration == pytest.approx(transcript.source.decoded_duration, abs=0.5)
    assert transcript.language == "kk" and transcript.models["asr"]["whisper_token"] == "kk"
    assert transcript.segments
    assert any(ch in "әғқңөұүһі" for ch in "".join(s.text for s in transcript.segments).lower()), \
        "decoded with the Kazakh token: Kazakh Cyrillic letters"
    for seg in transcript.segments:
        assert seg.translation is None and UNTRANSLATED in seg.flags
        assert seg.start >= 2.5, "VAD keeps the 3 s quiet start out of the first segment"
        assert seg.end <= transcript.source.duration + 0.05
    assert any("kk -> en" in w for w in transcript.warnings)
    assert "kk -> en" in result.warnings[0]

    manifest = json.loads((result.bundle / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((result.bundle / name).read_bytes()).hexdigest() == digest
    kept = linked_video(result.bundle).resolve()
    assert kept.parent == (tmp_path / "archive" / "originals").resolve(), "the viewer plays the archive's copy"
    assert kept.read_bytes() == kk_video.read_bytes()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o400, "the kept original is read-only"
    srt = (result.bundle / "kk.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n") and " --> " in srt
    assert not (tmp_path / "archive" / ".work" / sha[:12]).exists(), "derived WAV removed after publishing"


def test_translated_bundle_has_english_and_bilingual_files(kk_video, converted_base, tmp_path):
    install_package(build_tiny_argos_package(tmp_path / "argos-build", "kk", "en"))
    result = process_video(kk_video, tmp_path / "archive", _options(converted_base))
    names = {p.name for p in result.bundle.iterdir()}
    assert {"en.srt", "en.vtt", "en.txt", "kk-en.srt", "kk-en.vtt"} <= names
    transcript = Transcript.load(result.bundle / "transcript.json")
    assert transcript.models["translation"]["route"] == ["kk", "en"]
    assert all(isinstance(s.translation, str) and UNTRANSLATED not in s.flags for s in transcript.segments)
    first = transcript.segments[0]
    bilingual = (result.bundle / "kk-en.vtt").read_text(encoding="utf-8")
    assert bilingual.startswith("WEBVTT")
    cue = bilingual.split("\n\n")[1].splitlines()
    assert cue[1] == " ".join(first.text.split()) and cue[2] == " ".join(first.translation.split())


def test_silence_only_gives_zero_segments(tiny_whisper, tmp_path):
    video = mf.silence_video(tmp_path / "quiet.mp4", 20)
    result = process_video(video, tmp_path / "archive", _options(tiny_whisper, language="auto"))
    transcript = Transcript.load(result.bundle / "transcript.json")
    assert transcript.segments == []
    assert transcript.language is None
    assert "no speech found in the audio" in transcript.warnings
    assert (result.bundle / "und.srt").read_text() == ""


def test_rerun_reuses_bundle_and_force_redoes_it(kk_video, tiny_whisper, tmp_path):
    archive = tmp_path / "archive"
    first = process_video(kk_video, archive, _options(tiny_whisper))
    again = process_video(kk_video, archive, _options(tiny_whisper))
    assert (again.status, again.bundle) == ("reused", first.bundle)
    other = process_video(kk_video, archive, _options(tiny_whisper, translate=False))
    assert other.status == "done", "different options are a different result"
    forced = process_video(kk_video, archive, _options(tiny_whisper), force=True)
    assert forced.status == "done"
    assert [p.name for p in archive.iterdir() if p.is_dir() and not p.name.startswith(".")
            and p.name not in ("custody", "originals")] == [first.bundle.name]


def test_truncated_video_is_flagged(media, tiny_whisper, tmp_path):
    whole = mf.video_from_audio(media / "kk.wav", tmp_path / "whole.mp4", tail_silence=20,
                                extra=("-movflags", "+faststart"))
    cut = mf.truncate(whole, tmp_path / "cut.mp4", 0.5)
    result = process_video(cut, tmp_path / "archive", _options(tiny_whisper))
    transcript = Transcript.load(result.bundle / "transcript.json")
    assert "truncated" in transcript.flags
    assert any("truncated" in w for w in result.warnings)


def test_failed_write_leaves_no_bundle(kk_video, tiny_whisper, tmp_path, monkeypatch):
    def broken(_transcript):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "renderings", broken)
    archive = tmp_path / "archive"
    with pytest.raises(OSError):
        process_video(kk_video, archive, _options(tiny_whisper))
    assert [p.name for p in archive.iterdir()
            if not p.name.startswith(".work") and p.name not in ("custody", "originals", ".locks")] == []


def test_cli_reports_each_file_and_fails_on_bad_input(kk_video, tiny_whisper, tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    archive = tmp_path / "archive"
    code = main(["run", str(kk_video), str(bad), "--out", str(archive), "--language", "kk",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].endswith("\tdone") and Path(out[0].split("\t")[0]).parent == archive
    failed = next(line for line in out if line.startswith("FAILED"))
    assert str(bad) in failed and "not a video or audio file" in failed
    assert bad.read_text() == "this is not a video\n", "bad input is kept as it was"


def test_cli_archive_from_environment(kk_video, tiny_whisper, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TESTIMONY_OUT", str(tmp_path / "env-archive"))
    assert main(["run", str(kk_video), "--language", "kk", "--asr-model", str(tiny_whisper),
                 "--no-translate", *TINY_FLAGS]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(str(tmp_path / "env-archive"))
    assert config.archive_dir(None) == tmp_path / "env-archive"


def test_missing_model_and_uyghur_token_are_explained(kk_video, media, tiny_whisper, tmp_path, capsys):
    code = main(["run", str(kk_video), "--out", str(tmp_path / "a"), "--asr-model", "no-such-model"])
    assert code == 2 and "Unknown ASR model 'no-such-model'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists(), "a missing model is refused before any work"
    ug = mf.video_from_audio(media / "ug.wav", tmp_path / "ug.mp4")
    code = main(["run", str(ug), "--out", str(tmp_path / "b"), "--language", "ug",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "no 'ug' language token" in err and "--whisper-token uz" in err
    assert not (tmp_path / "b").exists(), "refused before any work"


LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.mark.slow
def test_real_english_interview_accuracy_and_times(converted_base, tmp_path):
    """Whisper base through the whole pipeline on real LibriVox speech: WER <= 5%, times where speech is."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    if not LIBRIVOX.is_dir():
        pytest.skip("Debian pocketsphinx-testdata is not installed (run bin/setup)")
    listed = sorted(librivox(), key=lambda clip: clip[1])
    references = {wav.stem: text for _, wav, text in listed}
    clips = [wav for _, wav, _ in listed]
    video = mf.interview_video(clips, tmp_path / "interview.mp4", lead_silence=4.0, pause=3.0)

    result = process_video(video, tmp_path / "archive", RunOptions(asr=AsrOptions(model=str(converted_base))))
    transcript = Transcript.load(result.bundle / "transcript.json")
    assert transcript.detected_language == "en" and transcript.language == "en"
    assert {p.name for p in result.bundle.iterdir()} == {"transcript.json", "manifest.json", "index.html",
                                                          "en.srt", "en.vtt", "en.txt"}
    assert transcript.segments[0].start >= 3.5, "no first segment stamped at 0.0 after the quiet start"
    normalize = EnglishTextNormalizer()
    hypothesis = normalize(" ".join(s.text for s in transcript.segments))
    reference = normalize(" ".join(references[c.stem] for c in clips))
    wer = jiwer.wer(reference, hypothesis)
    print(f"\npipeline WER of Whisper base on {len(clips)} LibriVox clips: {wer:.2%}")
    assert wer <= 0.05
    for seg in transcript.segments:  # every segment lies inside the audio and in order
        assert 0 <= seg.start < seg.end <= transcript.source.duration + 0.05
    assert [s.start for s in transcript.segments] == sorted(s.start for s in transcript.segments)


@pytest.mark.parametrize("name", ["-starts with dash.mp4", "colon:in name.mp4", "quote's \"name\".mp4",
                                  "new\nline.mp4", "ئۇيغۇر گۇۋاھچى.mp4"])
def test_hostile_file_names(media, tiny_whisper, tmp_path, capsys, name):
    target = mf.video_from_audio(media / "kk.wav", tmp_path / "src.mp4").rename(tmp_path / name)
    archive = tmp_path / "archive"
    code = main(["run", str(target), "--out", str(archive), "--language", "Kazakh",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS])
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(out.splitlines()) == 1 and out.rstrip().endswith("\tdone")
    transcript = Transcript.load(next(archive.glob("*/transcript.json")))
    assert transcript.source.file_name == name and transcript.language == "kk"
    assert target.exists()


def test_non_utf8_file_name(media, tiny_whisper, tmp_path, capsys):
    import os

    raw = os.fsdecode(os.fsencode(str(tmp_path)) + b"/witness-\xff\xfe.mp4")
    target = mf.video_from_audio(media / "kk.wav", tmp_path / "src.mp4").rename(raw)
    code = main(["run", str(target), "--out", str(tmp_path / "archive"), "--language", "kk",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().out
    transcript = Transcript.load(next((tmp_path / "archive").glob("*/transcript.json")))
    assert transcript.source.file_name == "witness-\\xff\\xfe.mp4"


def test_models_import_then_run_by_name(kk_video, tiny_whisper, tmp_path, capsys):
    package = build_tiny_argos_package(tmp_path / "argos-build", "kk", "en")
    assert main(["models", "import", str(package)]) == 0
    assert main(["models", "import", str(tiny_whisper), "--name", "tiny-random"]) == 0
    assert main(["models", "import", str(kk_video)]) == 1, "neither a package nor a checkpoint"
    code = main(["run", str(kk_video), "--out", str(tmp_path / "archive"), "--language", "kk",
                 "--asr-model", "tiny-random", *TINY_FLAGS])
    assert code == 0, capsys.readouterr().out
    transcript = Transcript.load(next((tmp_path / "archive").glob("*/transcript.json")))
    assert transcript.models["asr"]["name"] == "tiny-random"
    assert transcript.models["translation"]["route"] == ["kk", "en"]
