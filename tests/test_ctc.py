"""The CTC engine with tiny random models in the real export formats (tests/tiny_models): import
checked and refused, a run through the real CLI, byte-identical output, `verify --reproduce`, routes
that name the engine, and sentence-sized segments from unpunctuated words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.asr.readable import sentences
from pipeline.store import routes

from . import media_factory as mf
from . import tiny_models

REPO = Path(__file__).resolve().parent.parent
RUN_FLAGS = ["--no-translate", "--no-diarize"]
CTC_FORMATS = ["omnilingual-ctc", "gigaam-ctc"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real CLI in a fresh process, with the test's model store (TESTIMONY_MODELS is set per test)."""
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The tiny exports, written once by the same command anyone would run."""
    out = tmp_path_factory.mktemp("tiny-exports")
    subprocess.run([sys.executable, "-m", "tests.tiny_models", str(out), *CTC_FORMATS], cwd=REPO, check=True,
                   capture_output=True)
    return {name: out / name for name in CTC_FORMATS}


@pytest.fixture
def kk_video(media, tmp_path) -> Path:
    return mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)


def _transcript(bundle: Path) -> dict:
    return json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))


def _bundle(archive: Path) -> Path:
    return next(p for p in archive.iterdir() if p.is_dir() and (p / "transcript.json").is_file())


def test_tiny_models_are_deterministic_and_have_the_published_io(exports, tmp_path):
    import onnxruntime as ort

    again = tiny_models.write_all(tmp_path / "again", names=CTC_FORMATS)
    for name, folder in exports.items():
        for item in folder.iterdir():
            assert item.read_bytes() == (again[name] / item.name).read_bytes(), f"{name}/{item.name} differs"
    omni = ort.InferenceSession(str(exports["omnilingual-ctc"] / "model.int8.onnx"))
    assert [(i.name, i.shape) for i in omni.get_inputs()] == [("x", ["N", "num_samples"])]
    assert omni.get_outputs()[0].name == "logits"
    assert omni.get_modelmeta().custom_metadata_map["model_type"] == "omnilingual-asr"
    giga = ort.InferenceSession(str(exports["gigaam-ctc"] / "model.onnx"))
    assert [i.name for i in giga.get_inputs()] == ["features", "feature_lengths"]
    assert giga.get_inputs()[0].shape[1] == 64 and giga.get_outputs()[0].name == "log_probs"


@pytest.mark.parametrize("fmt", ["omnilingual-ctc", "gigaam-ctc"])
def test_import_checks_format_and_records_every_files_hash(exports, fmt):
    from pipeline.hashing import file_sha256
    from pipeline.store.ctc_store import ctc_dir

    done = cli("models", "import", str(exports[fmt]), "--name", "tiny", "--language", "kk")
    assert "as CTC model 'tiny'" in done.stdout and "engine ctc" in done.stdout
    record = json.loads((ctc_dir() / "tiny.json").read_text(encoding="utf-8"))
    assert record["format"] == fmt and record["engine"] == "ctc"
    assert record["files"] == {p.name: file_sha256(p) for p in sorted(exports[fmt].iterdir())}
    route = routes.route_for("kk")
    assert (route.asr_model, route.engine) == ("tiny", "ctc")
    assert cli("models", "verify").returncode == 0


def test_import_refuses_a_vocabulary_that_does_not_match(exports, tmp_path):
    broken = tmp_path / "short-vocab"
    broken.mkdir()
    for item in exports["omnilingual-ctc"].iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    lines = (broken / "tokens.txt").read_text(encoding="utf-8").splitlines()
    (broken / "tokens.txt").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    done = cli("models", "import", str(broken), "--language", "kk", check=False)
    assert done.returncode != 0
    assert f"{broken / 'tokens.txt'}: {len(lines) - 1} tokens, but model.int8.onnx scores {len(lines)}" \
        in done.stderr
    assert not (Path(os.environ["TESTIMONY_MODELS"]) / "ctc" / "short-vocab").exists()


def test_import_refuses_an_input_of_the_wrong_shape(exports, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    wrong = tmp_path / "eighty-mels"
    wrong.mkdir()
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["features"], ["log_probs"], perm=[0, 2, 1])], "wrong",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", 80, "T"])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["B", "T", 80])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, wrong / "model.onnx")
    (wrong / "tokens.txt").write_text("".join(f"t{i} {i}\n" for i in range(80)), encoding="utf-8")
    done = cli("models", "import", str(wrong), "--language", "kk", check=False)
    assert done.returncode != 0
    assert f"{wrong / 'model.onnx'}: inputs (features tensor(float) ['B', 80, 'T'])" in done.stderr
    assert "not a CTC export this store can run" in done.stderr


@pytest.mark.parametrize("fmt", ["omnilingual-ctc", "gigaam-ctc"])
def test_run_makes_a_reproducible_bundle(exports, kk_video, tmp_path, fmt):
    cli("models", "import", str(exports[fmt]), "--name", "tiny-ctc", "--language", "kk")
    bundles = []
    for n in range(2):
        archive = tmp_path / f"archive-{n}"
        cli("run", str(kk_video), "--out", str(archive), "--language", "kk", "--engine", "ctc", *RUN_FLAGS)
        bundles.append(_bundle(archive))
    first = _transcript(bundles[0])
    asr = first["models"]["asr"]
    assert (asr["engine"], asr["format"], asr["name"]) == ("ctc", fmt, "tiny-ctc")
    record = json.loads((Path(os.environ["TESTIMONY_MODELS"]) / "ctc" / "tiny-ctc.json").read_text(encoding="utf-8"))
    assert asr["sha256"] == record["files"][tiny_onnx(fmt)]
    segments = first["segments"]
    assert segments, "random weights still write tokens over the voiced stretch"
    for seg in segments:
        assert 0.5 <= seg["start"] < seg["end"] and seg["words"], seg  # 1 s of silence first, VAD padding
        assert seg["text"] == "".join(w["word"] for w in seg["words"]).strip()
        assert all(seg["start"] <= w["start"] < w["end"] <= seg["end"] for w in seg["words"])
        assert all(0 < w["probability"] <= 1 for w in seg["words"]) and seg["avg_logprob"] < 0
        assert len(seg["words"]) <= 30 and seg["end"] - seg["start"] <= 20
    for name in ("transcript.json", "kk.srt", "kk.txt"):
        assert _without_run_times(bundles[0] / name) == _without_run_times(bundles[1] / name), name
    sha12 = bundles[0].name[:12]
    done = cli("verify", sha12, "--out", str(bundles[0].parent), "--reproduce")
    assert "every segment re-derived from the original matches" in done.stderr


def tiny_onnx(fmt: str) -> str:
    return "model.int8.onnx" if fmt == "omnilingual-ctc" else "model.onnx"


def _without_run_times(path: Path) -> str:
    """The file's text with the fields that say when the run happened (never what it made) blanked."""
    if path.suffix != ".json":
        return path.read_text(encoding="utf-8")
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("created", "created_at", "processed_at", "elapsed_seconds", "timings"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def test_route_names_the_engine_and_detection_stays_whispers(exports, kk_video, tiny_whisper, tmp_path):
    cli("models", "import", str(exports["omnilingual-ctc"]), "--name", "kk-ctc", "--language", "kk")
    routes.set_route("auto", asr_model=str(tiny_whisper))  # Whisper detects, the kk route decodes
    cli("run", str(kk_video), "--out", str(tmp_path / "a"), "--expect", "kk", *RUN_FLAGS)
    data = _transcript(_bundle(tmp_path / "a"))
    assert data["language"] == "kk"
    assert (data["models"]["asr"]["engine"], data["models"]["asr"]["name"]) == ("ctc", "kk-ctc")
    refused = cli("run", str(kk_video), "--out", str(tmp_path / "b"), "--engine", "ctc", *RUN_FLAGS, check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "the ctc engine cannot detect the language" in said
    assert "--language" in said and "inbox/" in said


def test_route_to_a_missing_ctc_model_names_the_command_that_fixes_it(kk_video, tmp_path):
    store = Path(os.environ["TESTIMONY_MODELS"])
    store.mkdir(parents=True, exist_ok=True)
    (store / "manifest.local.toml").write_text(
        '[ctc.omnilingual-ctc-300m]\nlanguages = "kk, ug"\nsource = "https://huggingface.co/team/omni-300m"\n'
        'licence = "Apache-2.0"\n', encoding="utf-8")
    routes.set_route("kk", asr_model="omnilingual-ctc-300m", engine="ctc")
    done = cli("run", str(kk_video), "--out", str(tmp_path / "a"), "--language", "kk", *RUN_FLAGS, check=False)
    assert done.returncode != 0 and "`testimony models install omnilingual-ctc-300m`" in done.stderr
    routes.set_route("ug", asr_model="uyghur-ctc", engine="ctc")
    done = cli("run", str(kk_video), "--out", str(tmp_path / "b"), "--language", "ug", *RUN_FLAGS, check=False)
    assert done.returncode != 0 and "`testimony models import PATH/TO/EXPORT --name uyghur-ctc" in done.stderr


def test_segments_cut_at_pauses_and_capped():
    def words(starts: list[float]) -> list[dict]:
        return [{"start": s, "end": round(s + 0.25, 3)} for s in starts]

    steady = words([round(i * 0.3, 3) for i in range(70)])  # no pause at all: halved until it fits
    assert [len(p) for p in sentences(steady)] == [17, 18, 17, 18]
    paused = words([0.0, 0.3, 0.6, 2.0, 2.3, 5.0])  # pauses of 1.15 and 2.45 s
    assert [len(p) for p in sentences(paused)] == [3, 2, 1]
    long_slow = words([i * 0.7 for i in range(40)])  # 0.45 s gaps, under the pause, 28 s long
    pieces = sentences(long_slow)
    assert all(p[-1]["end"] - p[0]["start"] <= 20 and len(p) <= 30 for p in pieces)
    assert [w for p in pieces for w in p] == long_slow and sentences(long_slow) == pieces


def test_gigaam_features_match_a_direct_mel_computation():
    from pipeline.asr.ctc_features import log_mel

    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 16000).astype(np.float32)
    features = log_mel(audio)
    assert features.shape == (64, 101) and features.dtype == np.float32  # centred: 1 + 16000 / 160
    from pipeline.asr.ctc_features import _filters

    frame = np.pad(audio.astype(np.float64), 200, mode="reflect")[160 * 50:160 * 50 + 400]
    power = np.abs(np.fft.rfft(frame * np.hanning(401)[:-1])) ** 2  # torch's periodic Hann window
    expected = np.log(np.clip(_filters() @ power, 1e-9, 1e9))
    assert np.allclose(features[:, 50], expected, rtol=1e-5, atol=1e-5)
    peaks = _filters().argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] > 150, "64 bands rising to near 8 kHz"


def test_uyghur_by_sidecar_runs_on_its_ctc_route(exports, media, tmp_path):
    """Whisper has no Uyghur token; a CTC model needs none: the sidecar's language picks the ug route."""
    cli("models", "import", str(exports["gigaam-ctc"]), "--name", "ug-ctc", "--language", "ug")
    video = mf.video_from_audio(media / "ug.wav", tmp_path / "ug witness.mp4", lead_silence=0.5)
    video.with_name(video.name + ".json").write_text(json.dumps({"language": "ug"}), encoding="utf-8")
    cli("run", str(video), "--out", str(tmp_path / "a"), "--engine", "ctc", *RUN_FLAGS)
    data = _transcript(_bundle(tmp_path / "a"))
    assert data["language"] == "ug" and data["segments"]
    assert (data["models"]["asr"]["engine"], data["models"]["asr"]["name"]) == ("ctc", "ug-ctc")
    assert data["models"]["asr"]["whisper_token"] is None


def test_eval_scores_the_ctc_engine_with_whisper_detecting(exports, tiny_whisper, tmp_path):
    """`eval` decodes with the CTC model and runs its language-ID pass with Whisper's `auto` model."""
    from pipeline.evaluation import devset

    cli("models", "import", str(exports["gigaam-ctc"]), "--name", "kk-ctc", "--language", "kk")
    routes.set_route("auto", asr_model=str(tiny_whisper))
    manifest = devset.build_devset(tmp_path / "dev", per_language=1, languages=("kk",))
    cli("eval", str(manifest), "--out", str(tmp_path / "report"), "--engine", "ctc", "--asr-model", "kk-ctc",
        *RUN_FLAGS)
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    clip = report["clips"][0]
    assert clip["error"] is None and clip["detected_language"], "detected by Whisper, decoded by the CTC model"
    assert _transcript(Path(clip["bundle"]))["models"]["asr"]["engine"] == "ctc"
    assert clip["scores"]["cer"] >= 0


def test_a_resumed_ctc_run_reuses_its_checkpoint(exports, media, tmp_path, monkeypatch):
    """The shared loop checkpoints each chunk: a second pass over the same checkpoint decodes nothing
    and gives the same segments."""
    from pipeline.asr import ctc_engine
    from pipeline.asr.core import AsrOptions
    from pipeline.stages.checkpoint import Checkpoint
    from pipeline.stages.media import load_wav

    mf.ffmpeg("-i", str(media / "kk.wav"), "-ar", "16000", "-ac", "1", str(tmp_path / "kk16.wav"))
    audio = load_wav(tmp_path / "kk16.wav")
    engine = ctc_engine.ENGINE
    model, record = engine.load(str(exports["omnilingual-ctc"]), "cpu")
    options = AsrOptions(model=str(exports["omnilingual-ctc"]), language="kk", engine="ctc")
    checkpoint = tmp_path / "asr.jsonl"
    first = engine.transcribe(model, audio, options, checkpoint=Checkpoint(checkpoint, {"model": record.sha256}))

    def refuse(*_args, **_kwargs):
        raise AssertionError("a checkpointed chunk was decoded again")

    monkeypatch.setattr(ctc_engine, "_decode", refuse)
    again = engine.transcribe(model, audio, options, checkpoint=Checkpoint(checkpoint, {"model": record.sha256}))
    assert first.segments and again.segments == first.segments


def _tones(seconds: float, silences: list[tuple[float, float]], dips: list[float] = ()) -> np.ndarray:
    """A chord whose loudness swells four times a second like syllables, never falling silent, except in
    `silences` ((start, end) seconds); `dips` are 40 ms near-silences, as a stop consonant's closure."""
    t = np.arange(int(seconds * 16000)) / 16000
    chord = sum(np.sin(2 * np.pi * f * t) for f in (180, 420, 1100)) / 3
    signal = chord * (0.6 + 0.35 * np.sin(2 * np.pi * 4 * t))
    for start, end in silences:
        signal[int(start * 16000):int(end * 16000)] = 0
    for at in dips:
        signal[int(at * 16000):int((at + 0.04) * 16000)] *= 0.01
    return signal.astype(np.float32)


@pytest.mark.parametrize("limit", [40.0, 30.0])
def test_a_clip_over_the_limit_is_cut_in_its_pause_not_into_equal_parts(limit):
    from pipeline.asr.ctc_engine import _calls

    seconds, pause = limit + 5, (limit - 6.0, limit - 5.75)  # the equal cut would fall at (limit + 5) / 2
    calls = _calls(_tones(seconds, [pause], dips=[limit - 2.0]), limit)
    assert len(calls) == 2 and calls[0][0] == 0 and calls[-1][1] == int(seconds * 16000)
    cut = calls[0][1] / 16000
    assert calls[1][0] == calls[0][1] and pause[0] <= cut <= pause[1], f"cut at {cut} s, pause at {pause}"
    assert abs(cut - seconds / 2) > 5, "not the equal cut"

    long = _calls(_tones(2.4 * limit, [(0.8 * limit, 0.8 * limit + 0.3), (1.7 * limit, 1.7 * limit + 0.3)]), limit)
    cuts = [b / 16000 for _, b in long[:-1]]
    assert len(long) == 3 and all(b - a <= limit * 16000 for a, b in long)
    assert 0.8 * limit <= cuts[0] <= 0.8 * limit + 0.3 and 1.7 * limit <= cuts[1] <= 1.7 * limit + 0.3, cuts
    assert _calls(np.zeros(int(limit * 16000), np.float32), limit) == [(0, int(limit * 16000))], "at the limit: whole"


def test_greedy_in_blocks_gives_the_bytes_of_the_whole_calls_log_softmax():
    """Greedy decoding normalises a few frames at a time (memory); each frame's best token and its
    log-posterior must be bit for bit what a log-softmax over the whole call gives, so the speed-up
    cannot move a word time or a confidence."""
    from pipeline.asr import ctc_engine

    rng = np.random.default_rng(3)
    frames = 2 * ctc_engine.GREEDY_FRAMES + 37  # blocks of two sizes
    for width in (9812, 256):  # Omnilingual's logits, GigaAM's characters
        scores = (rng.standard_normal((frames, width)) * 4).astype(np.float32)
        scores[5, :] = scores[5, 0]  # a frame of ties: the first token wins, as argmax over the call gives
        whole = ctc_engine._log_softmax(scores)
        best, picked = ctc_engine._greedy(scores)
        assert np.array_equal(best, whole.argmax(axis=1)) and best[5] == 0
        assert picked.tobytes() == whole[np.arange(frames), best].tobytes()
