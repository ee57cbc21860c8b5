"""The faster-whisper engine, the .pt -> CTranslate2 conversion it runs on, and many-file runs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from pipeline.asr.core import AsrOptions
from pipeline.cli.main import main
from pipeline.evaluation.devset import librivox
from pipeline.run import process
from pipeline.run.batch import run_many
from pipeline.run.process import RunOptions, process_video
from pipeline.store.ct2_to_openai import packaged_base_parts, read_ct2_model
from pipeline.store.openai_to_ct2 import export_ct2
from pipeline.transcript import Transcript

from . import media_factory as mf

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
TINY_FLAGS = ["--no-word-timestamps", "--no-fallback"]  # random weights: run the machinery, quickly


def _tiny(model: Path, engine: str = "whisper") -> RunOptions:
    return RunOptions(asr=AsrOptions(model=str(model), language="kk", word_timestamps=False,
                                     temperatures=(0.0,), engine=engine), translate=False)


def _wer(transcript: Transcript, reference: str) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    return jiwer.wer(normalize(reference), normalize(" ".join(s.text for s in transcript.segments)))


@pytest.mark.slow
def test_faster_whisper_engine_matches_the_reference_on_real_speech(converted_base, ct2_base, tmp_path):
    """Whisper base on both engines over real LibriVox speech after a quiet start: same format,
    same language, WER within a point of the reference engine, times inside the audio."""
    if not LIBRIVOX.is_dir():
        pytest.skip("Debian pocketsphinx-testdata is not installed (run bin/setup)")
    listed = sorted(librivox(), key=lambda clip: clip[1])
    references = {wav.stem: text for _, wav, text in listed}
    clips = [wav for _, wav, _ in listed]
    reference = " ".join(references[c.stem] for c in clips)
    video = mf.interview_video(clips, tmp_path / "interview.mp4", lead_silence=4.0, pause=3.0)

    runs = {}
    for engine, model in (("whisper", converted_base), ("faster-whisper", ct2_base)):
        options = RunOptions(asr=AsrOptions(model=str(model), engine=engine))
        result = process_video(video, tmp_path / engine, options)
        runs[engine] = (result.bundle, Transcript.load(result.bundle / "transcript.json"))
    (ref_bundle, ref), (fw_bundle, fw) = runs["whisper"], runs["faster-whisper"]

    assert {p.name for p in fw_bundle.iterdir()} == {p.name for p in ref_bundle.iterdir()}
    assert fw.to_dict().keys() == ref.to_dict().keys()
    assert (fw.language, fw.detected_language) == ("en", "en") and fw.language_probability > 0.9
    asr = fw.models["asr"]
    assert asr["engine"] == "faster-whisper" and asr["engine_version"] and asr["compute_type"].startswith("int8")
    assert asr["options"]["engine"] == "faster-whisper" and asr["whisper_token"] == "en"
    assert fw.models["options_key"] != ref.models["options_key"], "the engine is part of the cache key"

    wer_ref, wer_fw = _wer(ref, reference), _wer(fw, reference)
    print(f"\nWER on {len(clips)} LibriVox clips: whisper {wer_ref:.2%}, faster-whisper {wer_fw:.2%}")
    assert wer_fw <= 0.05 and wer_fw <= wer_ref + 0.01

    duration = fw.source.duration
    assert fw.segments[0].start >= 3.5, "VAD keeps the quiet start out of the first segment"
    assert [s.start for s in fw.segments] == sorted(s.start for s in fw.segments)
    for seg in fw.segments:
        assert 0 <= seg.start < seg.end <= duration + 0.05
        assert seg.words and all(seg.start - 0.05 <= w.start <= w.end <= seg.end + 0.05 for w in seg.words)
        assert set(asdict(seg)) == set(asdict(ref.segments[0]))
        assert isinstance(seg.flags, list)
    assert len(fw.segments) == len(ref.segments), "both decode the same VAD regions"
    for a, b in zip(fw.segments, ref.segments):
        assert abs(a.start - b.start) <= 0.5 and abs(a.end - b.end) <= 0.5


def test_pt_to_ct2_gives_openai_whispers_numbers(tiny_whisper, media, tmp_path):
    """Same mel into openai-whisper and into CTranslate2 on the converted folder: encoder output,
    language probabilities, every step's logits and the greedy tokens agree."""
    import ctranslate2
    import torch
    import whisper

    folder = export_ct2(tiny_whisper, tmp_path / "ct2")
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    model = whisper.load_model(str(tiny_whisper), device="cpu")
    mel = whisper.pad_or_trim(whisper.log_mel_spectrogram(whisper.load_audio(str(media / "en.wav"))), 3000)
    ct2 = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    features = ct2.encode(ctranslate2.StorageView.from_array(mel.numpy()[None].astype(np.float32)))

    with torch.no_grad():
        encoded = model.encoder(mel[None])
    assert np.abs(np.array(features) - encoded.numpy()).max() < 1e-4

    _, probs = model.detect_language(mel)
    ct2_probs = {token[2:-2]: p for token, p in ct2.detect_language(features)[0]}
    assert ct2_probs.keys() == probs.keys()
    assert max(abs(probs[k] - ct2_probs[k]) for k in probs) < 1e-4

    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False)
    reference = whisper.decode(model, mel, options).tokens
    suppress = list(whisper.decoding.DecodingTask(model, options)._get_suppress_tokens())
    prompt = list(whisper.tokenizer.get_tokenizer(True, language="en").sot_sequence_including_notimestamps)
    generated = ct2.generate(features, [prompt], beam_size=1, suppress_tokens=suppress, return_logits_vocab=True)[0]
    tokens = generated.sequences_ids[0]
    assert len(tokens) >= 20 and tokens == reference

    with torch.no_grad():  # teacher-forced logits of the same sequence
        logits = model.logits(torch.tensor([prompt + tokens]), encoded)[0].numpy()[len(prompt) - 1:][:len(tokens)]
    steps = np.array([np.array(x) for x in generated.logits]).reshape(-1, logits.shape[-1])[:len(tokens)]
    kept = steps > -1e30  # CTranslate2 reports suppressed tokens as -FLT_MAX
    assert kept.sum() > 0.99 * kept.size
    assert np.abs(steps - logits)[kept].max() < 1e-3


def test_base_round_trip_is_lossless(converted_base, tmp_path):
    """Packaged CTranslate2 base -> openai-whisper .pt -> CTranslate2 again: every weight bit-identical,
    the same decoding config and vocabulary."""
    folder = export_ct2(converted_base, tmp_path / "base")
    parts = packaged_base_parts()
    ours, our_meta = read_ct2_model(folder)
    theirs, their_meta = read_ct2_model(parts)
    assert ours.keys() == theirs.keys()
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype and np.array_equal(ours[name], array), name
    common = their_meta["attributes"].keys() & our_meta["attributes"].keys()
    assert {k: our_meta["attributes"][k] for k in common} == {k: their_meta["attributes"][k] for k in common}
    published = json.loads((parts[0].parent / "config.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    for key in ("alignment_heads", "lang_ids", "suppress_ids", "suppress_ids_begin"):
        assert config[key] == published[key], key
    vocabulary = (parts[0].parent / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert json.loads((folder / "vocabulary.json").read_text(encoding="utf-8")) == vocabulary


def test_built_tokenizer_encodes_like_openai_whisper(ct2_base):
    """faster-whisper's tokenizer.json, built offline, gives openai-whisper's (tiktoken's) token ids."""
    import tokenizers
    import whisper

    tokenizer = tokenizers.Tokenizer.from_file(str(ct2_base / "tokenizer.json"))
    encoding = whisper.tokenizer.get_encoding("multilingual")
    texts = [t for column in ("kk", "ug-Arab", "en", "ru") for t in mf.udhr(column)] + [" the (( ♪♪ 123 "]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert ids == encoding.encode(text), text
        assert tokenizer.decode(ids) == text
    for name in ("<|startoftranscript|>", "<|kk|>", "<|transcribe|>", "<|nocaptions|>", "<|notimestamps|>"):
        assert tokenizer.token_to_id(name) == encoding.encode(name.replace("nocaptions", "nospeech"),
                                                               allowed_special="all")[0]


def test_cli_engine_faster_whisper_makes_a_bundle(media, tiny_whisper, tmp_path, capsys):
    """`--engine faster-whisper` with a .pt converts it into the store once and writes a bundle."""
    from pipeline import config

    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    archive = tmp_path / "archive"
    args = ["run", str(video), "--out", str(archive), "--language", "kk", "--asr-model", str(tiny_whisper),
            "--no-translate", *TINY_FLAGS]
    assert main([*args, "--engine", "faster-whisper"]) == 0, capsys.readouterr()
    line = capsys.readouterr().out.strip()
    assert line.endswith("\tdone")
    bundle = Path(line.split("\t")[0])
    transcript = Transcript.load(bundle / "transcript.json")
    asr = transcript.models["asr"]
    assert asr["engine"] == "faster-whisper" and asr["options"]["engine"] == "faster-whisper"
    assert asr["source_sha256"] == hashlib.sha256(tiny_whisper.read_bytes()).hexdigest()
    folders = [p for p in (config.models_dir() / "ct2").iterdir() if p.is_dir()]
    assert len(folders) == 1 and (folders[0].with_name(folders[0].name + ".json")).is_file()
    made = (folders[0] / "model.bin").stat().st_mtime_ns

    assert main([*args, "--engine", "faster-whisper"]) == 0
    assert capsys.readouterr().out.strip().endswith("\treused")
    assert main([*args, "--engine", "faster-whisper", "--force"]) == 0
    assert capsys.readouterr().out.strip().endswith("\tdone")
    assert main(args) == 0, "the reference engine is another result, not a reuse"
    assert capsys.readouterr().out.strip().endswith("\tdone")
    assert (folders[0] / "model.bin").stat().st_mtime_ns == made, "converted once"
    assert not (archive / ".work").exists()


def test_window_groups_join_neighbours_within_one_window():
    from pipeline.stages.vad import SpeechRegion as R
    from pipeline.stages.vad import window_groups

    regions = [R(3, 8), R(11, 16), R(20, 31), R(33, 40), R(55, 60), R(61, 100)]
    assert window_groups(regions) == [R(3, 31), R(33, 40), R(55, 60), R(61, 100)]
    assert window_groups(regions, max_gap_s=2.5) == [R(3, 8), R(11, 16), R(20, 40), R(55, 60), R(61, 100)]
    assert window_groups([]) == []


def test_default_engine_keeps_existing_cache_keys():
    asr = AsrOptions(model="base", language="kk")
    before_engines = {"asr": {k: v for k, v in asdict(asr).items() if k not in ("engine", "prompt", "expect")},
                      "audio_track": None,
                      "translate": True}
    expected = hashlib.sha256(json.dumps(before_engines, sort_keys=True).encode()).hexdigest()[:16]
    assert RunOptions(asr=asr, diarize=False).key() == expected
    assert RunOptions(asr=asr).key() != expected, "speaker labels are new output: bundles without them are stale"
    fw = RunOptions(asr=AsrOptions(model="base", language="kk", engine="faster-whisper"), diarize=False)
    assert fw.key() != expected
    with pytest.raises(ValueError):
        AsrOptions(engine="whisperx")


def test_many_files_overlap_extraction_and_match_sequential(media, tiny_whisper, tmp_path, monkeypatch):
    """run_many extracts file n+1 while file n is transcribed, and its bundles equal one-by-one runs."""
    v0, v1, v2 = (mf.video_from_audio(media / "kk.wav", tmp_path / f"v{n}.mp4", lead_silence=n * 0.5)
                  for n in range(3))
    copy = Path(shutil.copyfile(v1, tmp_path / "copy of v1.mp4"))  # same content, right after v1
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    videos = [v0, v1, copy, v2, bad]
    options = _tiny(tiny_whisper)

    sequential = []
    for video in videos:
        try:
            sequential.append(process_video(video, tmp_path / "one-by-one", options))
        except Exception as exc:
            sequential.append(exc)

    events: list[tuple[str, str, float, float]] = []

    def timed(kind, original):
        def wrapper(*args, **kwargs):  # records the calls that succeed (the bad file's probe fails)
            start = time.monotonic()
            value = original(*args, **kwargs)
            events.append((kind, threading.current_thread().name, start, time.monotonic()))
            return value
        return wrapper

    kinds = {"extract-audio": "extract", "transcribe": "transcribe"}
    stages = process.Stages(lambda name, fn: timed(kinds[name], fn) if name in kinds else fn)
    batch = list(run_many(videos, tmp_path / "batch", options, stages=stages))

    assert [v for v, _ in batch] == videos
    extracts = sorted((e for e in events if e[0] == "extract"), key=lambda e: e[2])
    transcribes = sorted((e for e in events if e[0] == "transcribe"), key=lambda e: e[2])
    assert len(extracts) == len(transcribes) == 3, "the copy is never extracted: it reuses v1's bundle"
    assert extracts[1][1].startswith("testimony-prefetch")
    assert extracts[1][2] < transcribes[0][3], "v1 is extracted while v0 is transcribed"

    for (video, got), want in zip(batch, sequential):
        assert type(got) is type(want), video
        if isinstance(want, Exception):
            assert str(got) == str(want)
            continue
        assert got.status == want.status and got.bundle.name == want.bundle.name
        a, b = (Transcript.load(r.bundle / "transcript.json").to_dict() for r in (got, want))
        a.pop("created"), b.pop("created")
        assert a == b
    assert [r.status for _, r in batch[:4]] == ["done", "done", "reused", "done"]
    assert not (tmp_path / "batch" / ".work").exists(), "no extracted audio left behind"

    stopped = run_many(videos[:3], tmp_path / "stopped", options)
    next(stopped)
    stopped.close()  # the consumer gives up while the next file is being prefetched
    assert not (tmp_path / "stopped" / ".work").exists()


def test_the_faster_whisper_path_never_imports_torch(media, ct2_base, tmp_path):
    """`testimony run --engine faster-whisper` pays neither torch's import time nor its memory, speakers
    included when they are found with an ONNX encoder (the shipped Resemblyzer one runs on torch)."""
    from .speaker_onnx import export_resemblyzer

    script = ("import sys; from pipeline.cli.main import main; code = main(sys.argv[1:]); "
              "print('torch' in sys.modules, 'whisper' in sys.modules); sys.exit(code)")
    args = ["run", str(media / "en.wav"), "--engine", "faster-whisper", "--asr-model", str(ct2_base),
            "--language", "en", "--out", str(tmp_path / "archive"),
            "--speaker-encoder", str(export_resemblyzer(tmp_path / "speaker.onnx"))]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "False False"
