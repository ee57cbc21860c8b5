"""`testimony adapt` (issue 22): a tiny Whisper fine-tuned on what reviewers checked in a small archive.

The archive is made here the way a real one is: espeak-ng Kazakh kept as originals, bundles published
through the run's own path, corrected and checked through the real save. Every run is the real code:
ffmpeg cuts the audio, torch trains, the held-out clips are transcribed by `testimony eval`'s path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pipeline import config
from pipeline.adapt import pairs
from pipeline.adapt.train import Settings, train
from pipeline.archive import catalog, originals
from pipeline.archive.bundle import find_bundle
from pipeline.cli.main import main
from pipeline.errors import ModelMissingError
from pipeline.review import revisions
from pipeline.review.save import save_revision
from pipeline.run import process
from pipeline.run.options import RunOptions
from pipeline.stages.media import wav_duration
from pipeline.store import registry, routes
from pipeline.store.whisper_store import resolve_whisper
from pipeline.transcript import Segment, Source, Transcript

from . import media_factory as mf
from .test_flow import prefect_server  # noqa: F401  (a real Prefect server on loopback)
from .test_pipeline import TINY_FLAGS

ROOT = Path(__file__).resolve().parent.parent
LINES = mf.udhr("kk")


def _recording(folder: Path, first: int, second: int) -> tuple[Path, list[tuple[float, float, str]]]:
    """Two UDHR articles spoken one after the other: (the file, each segment's times and words)."""
    a = mf.speak(LINES[first], "kk", folder / f"a{first}.wav")
    b = mf.speak(LINES[second], "kk", folder / f"b{second}.wav")
    out = folder / f"witness {first}.wav"
    mf.ffmpeg("-i", str(a), "-i", str(b), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", str(out))
    da, db = wav_duration(a), wav_duration(b)
    return out, [(0.0, da, LINES[first]), (da, da + db, LINES[second])]


def _publish(archive: Path, video: Path, spans: list[tuple[float, float, str]], *, check: bool) -> str:
    """Keep the original, publish a machine draft of wrong words, then save the right words (checked)."""
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    originals.preserve(video, archive, sha)
    draft = [Segment(i, start, end, "машина естіген сөздер", english_source="machine")
             for i, (start, end, _) in enumerate(spans)]
    transcript = Transcript(Source(video.name, sha, video.stat().st_size, spans[-1][1], {"index": 0}), "kk", "kk",
                            0.9, {"asr": {"name": "tiny"}, "options_key": "k"}, draft,
                            created="2026-12-01T00:00:00+00:00")
    process.publish_transcript(archive, transcript)
    catalog.index_bundle(archive, find_bundle(archive, sha))
    if check:
        newest = revisions.newest(find_bundle(archive, sha))
        fixed = [{**s, "text": spans[s["id"]][2], "checked": True} for s in newest.segments]
        save_revision(archive, sha, base=newest.sha256, author="Aigul", segments=fixed)
    return sha


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> Path:
    """Three checked Kazakh recordings (two segments each) and one nobody checked."""
    folder, archive = tmp_path_factory.mktemp("speech"), tmp_path_factory.mktemp("archive")
    for first, second, check in ((3, 1, True), (4, 2, True), (6, 5, True), (8, 7, False)):
        video, spans = _recording(folder, first, second)
        _publish(archive, video, spans, check=check)
    return archive


@pytest.fixture
def archive(small_archive, tmp_path) -> Path:
    """A copy per test: adaptation writes runs and models into the archive."""
    return Path(shutil.copytree(small_archive, tmp_path / "archive"))


def test_pairs_are_checked_segments_split_by_recording(archive, tiny_whisper, capsys):
    found = pairs.collect(archive, "kk")
    assert len(found) == 3, "the unchecked recording teaches nothing"
    assert all(len(r.pairs) == 2 and r.revision == 1 for r in found)
    first = found[0].pairs[0]
    assert abs(len(first.audio) / 16000 - (first.end - first.start)) < 0.01, "audio cut by the segment's times"
    assert first.text in LINES
    train_set, held = pairs.split(found, 0.2, seed=1)
    assert len(held) == 1 and len(train_set) == 2
    assert not {r.sha256 for r in train_set} & {r.sha256 for r in held}, "never one recording on both sides"
    assert pairs.split(found, 0.2, seed=1)[1][0].sha256 == held[0].sha256, "the seed decides the split"
    assert {pairs.split(found, 0.2, seed=s)[1][0].sha256 for s in range(12)} == {r.sha256 for r in found}
    assert len(pairs.split(found, 0.9, seed=1)[0]) == 1, "at least one recording is learned from"
    with pytest.raises(pairs.AdaptError, match="this archive has 1 for this language"):
        pairs.split(found[:1], 0.2, seed=1)
    assert pairs.collect(archive, "ug") == []
    assert main(["adapt", "--language", "ug", "--from", str(tiny_whisper), "--out", str(archive)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "this archive has 0 for this language" in err, "one line a user can act on"
    assert not (archive / ".adapt").exists(), "nothing is written before the split succeeds"


def test_same_seed_same_weights(archive, tiny_whisper, tmp_path):
    learn = [p for r in pairs.collect(archive, "kk") for p in r.pairs]
    digests = []
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        weights, losses = train(tiny_whisper, learn, Settings("kk", epochs=2, seed=seed, learning_rate=1e-3),
                                tmp_path / run)
        digests.append(hashlib.sha256(weights.read_bytes()).hexdigest())
        assert len(losses) == 2 and losses[1] < losses[0], "it learns: the loss falls"
    assert digests[0] == digests[1], "same seed, same bytes"
    assert digests[2] != digests[0], "another seed, another order, other weights"


def _adapt(archive: Path, model: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", "adapt", "--language", "kk", "--from",
                           str(model), "--out", str(archive), "--held-out", "0.34", *extra],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.fixture
def plain(tiny_whisper):
    """The machine's ordinary kk model (tiny, imported and routed); the store as it was afterwards."""
    assert main(["models", "import", str(tiny_whisper), "--name", "plain", "--language", "kk"]) == 0
    yield json.loads(registry.record_path(config.whisper_dir() / "plain.pt").read_text())["sha256"]
    for link in config.whisper_dir().glob("kk-adapted-*"):
        link.unlink()
    for language, table in routes._read(routes.local_file()).items():
        if table.get("asr_model", "").startswith("kk-adapted-"):
            routes.drop_model(table["asr_model"])
    main(["models", "remove", "plain"])


def _run(video: Path, archive: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", "run", str(video), "--language", "kk",
                           "--no-translate", "--no-diarize", *TINY_FLAGS, "--out", str(archive)],
                          cwd=ROOT, capture_output=True, text=True)


def _cited(archive: Path, video: Path) -> dict:
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    return json.loads((find_bundle(archive, sha) / "transcript.json").read_text())["models"]["asr"]


def test_a_model_that_does_not_win_is_recorded_but_not_routed(archive, tiny_whisper, plain, capsys):
    # Learning rate 0: the weights are the base's, so the held-out figures tie and nothing is won.
    done = _adapt(archive, tiny_whisper, "--epochs", "1", "--learning-rate", "0")
    assert done.returncode == 0, done.stderr
    assert "left" in done.stderr and "epoch 1/1" in done.stderr, "a progress line with the time left"
    name = done.stdout.split("\t")[0]
    record = json.loads((archive / ".models" / f"{name}.pt.json").read_text())
    assert record["witness_derived"] and record["archive"] == str(archive.resolve())
    assert record["base"]["sha256"] == hashlib.sha256(tiny_whisper.read_bytes()).hexdigest()
    held = {r["sha256"] for r in record["held_out"]}
    learned = {r["sha256"] for r in record["learned_from"]}
    assert len(held) == 1 and len(learned) == 2 and not held & learned
    for cited in record["learned_from"]:
        bundle = find_bundle(archive, cited["sha256"])
        assert cited["revision_sha256"] == revisions.newest(bundle).sha256 and cited["revision"] == 1
    assert record["settings"] == {**record["settings"], "epochs": 1, "learning_rate": 0.0, "seed": 0,
                                  "whisper_token": "kk", "method": "decoder"}
    assert {"torch", "openai-whisper", "python"} <= set(record["versions"])
    assert record["before"]["segments"] == record["after"]["segments"] == 2
    assert record["after"]["wer"] == record["before"]["wer"] is not None
    assert not record["routed"] and "does not beat" in record["route_reason"]
    assert routes.route_for("kk", archive).asr_model == "plain"
    assert record["sha256"] == hashlib.sha256((archive / ".models" / f"{name}.pt").read_bytes()).hexdigest()

    assert name not in {m.name for m in registry.installed_models()}, "the machine's store does not know it"
    assert main(["models", "list", "--out", str(archive)]) == 0
    assert f"{name}\n      adapted from" in capsys.readouterr().out, "listed for its archive, with its figures"
    assert main(["models", "pack", str(archive.parent / "out.pack"), name, "--out", str(archive)]) == 0
    assert "learned from: witness 3.wav" in capsys.readouterr().err

    forced = _adapt(archive, tiny_whisper, "--epochs", "1", "--learning-rate", "0", "--route")
    assert forced.returncode == 0, forced.stderr
    weights = str((archive / ".models" / f"{name}.pt").resolve())
    assert routes.route_for("kk", archive).asr_model == weights, "an admin may route it all the same"
    assert routes.route_for("kk").asr_model == "plain", "routed for its archive only, never the machine"
    assert name not in routes.local_file().read_text() and not (config.whisper_dir() / f"{name}.pt").exists()
    assert main(["models", "pack", str(archive.parent / "kk.pack"), "--for", "kk"]) == 0
    with tarfile.open(archive.parent / "kk.pack") as tar:
        index = json.load(tar.extractfile("PACK.json"))
    assert [m["name"] for m in index["models"]] == ["plain"] and index["routes"]["kk"]["asr_model"] == "plain"


def test_an_adapted_route_belongs_to_its_archive(archive, tiny_whisper, plain, tmp_path, capsys):
    """Two archives on one machine: A's adapted model transcribes A's Kazakh, never B's."""
    done = _adapt(archive, tiny_whisper, "--epochs", "1", "--learning-rate", "1e-3", "--route")
    assert done.returncode == 0, done.stderr
    name = done.stdout.split("\t")[0]
    adapted = json.loads((archive / ".models" / f"{name}.pt.json").read_text())["sha256"]
    assert (archive / ".models" / "routes.toml").is_file() and adapted != plain
    weights = str((archive / ".models" / f"{name}.pt").resolve())
    for where, model in ((archive, weights), (tmp_path / "archive B", "plain"), (None, "plain")):
        assert RunOptions.from_flat(language="kk", archive=where).asr.model == model, "eval --archive, serve"

    video, other = mf.speak(LINES[9], "kk", tmp_path / "witness 9.wav"), tmp_path / "archive B"
    for where in (archive, other):
        made = _run(video, where)
        assert made.returncode == 0, made.stdout + made.stderr
    assert _cited(archive, video)["sha256"] == adapted, "A's run uses A's adapted model"
    assert _cited(other, video)["sha256"] == plain and name not in json.dumps(_cited(other, video)), \
        "B's run uses the machine's ordinary route and never cites A's model"
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    assert main(["verify", sha[:12], "--out", str(archive), "--reproduce"]) == 0, capsys.readouterr().out
    capsys.readouterr()

    # What an older testimony left: a store link into A's .models/ and a machine route to it.
    (config.whisper_dir() / f"{name}.pt").symlink_to(archive / ".models" / f"{name}.pt")
    routes.set_route("kk", asr_model=name, whisper_token="kk")
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if str(routes.local_file()) in line]
    assert len(warnings) == 1 and f"remove its [\"kk\"] asr_model line and {config.whisper_dir()}" in warnings[0]
    assert f"NOT USED: {config.whisper_dir() / name}.pt links to" in out
    assert routes.route_for("kk").asr_model == "base", "ignored: the shipped route, not A's model"
    assert routes.route_for("kk", other).asr_model == "base" and not capsys.readouterr().err, "said once"
    with pytest.raises(ModelMissingError, match=f"remove {config.whisper_dir() / name}.pt"):
        resolve_whisper(name)


def test_resume_after_a_kill_gives_the_same_weights(archive, tiny_whisper, tmp_path, capsys):
    flags = ("--epochs", "3", "--learning-rate", "1e-3")
    whole = _adapt(archive, tiny_whisper, *flags)
    assert whole.returncode == 0, whole.stderr
    name = whole.stdout.split("\t")[0]
    expected = json.loads((archive / ".models" / f"{name}.pt.json").read_text())["sha256"]
    for made in (archive / ".models", archive / ".adapt"):
        for path in made.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        shutil.rmtree(made)

    killed = _adapt(archive, tiny_whisper, *flags, env={"TESTIMONY_KILL_AT": "adapt:epoch#2"})
    assert killed.returncode == -9, killed.stderr
    (run,) = (archive / ".adapt").iterdir()
    assert (run / "checkpoint.pt").is_file() and not (archive / ".models").exists()
    # `clean` keeps a resumable run; `--adapt-runs` removes it once idle the stated age.
    for extra in ([], ["--adapt-runs", "--older-than", "1"]):
        assert main(["clean", "--out", str(archive), *extra]) == 0 and (run / "checkpoint.pt").is_file()
        assert f"kept {run}: an unfinished adapt run" in capsys.readouterr().err
    saved = shutil.copytree(run, tmp_path / "saved-run")
    assert main(["clean", "--out", str(archive), "--adapt-runs", "--older-than", "0"]) == 0
    assert f"removed {run} (adapt run, unfinished, idle;" in capsys.readouterr().out and not run.exists()
    shutil.copytree(saved, run)
    resumed = _adapt(archive, tiny_whisper, *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 3/3" in resumed.stderr and "epoch 1/3" not in resumed.stderr, "it went on from epoch 2"
    record = json.loads((archive / ".models" / f"{name}.pt.json").read_text())
    assert record["sha256"] == expected, "killed and resumed: the same bytes as one uninterrupted run"
    assert len(record["losses"]) == 3
    # Its model entered .models/: `clean` removes the run's folder and says what that freed.
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    assert main(["clean", "--out", str(archive)]) == 0
    out, err = capsys.readouterr()
    assert f"removed {run} (adapt run, finished: its model {name} is in .models/; {size / 2**20:.1f} MiB)" in out
    assert f"1 adapt run(s) removed, {size / 2**20:.1f} MiB freed" in err and size > 0
    assert not (archive / ".adapt").exists() and (archive / ".models" / f"{name}.pt").is_file()


def test_the_prefect_flow_adapts(archive, tiny_whisper, prefect_server):  # noqa: F811
    """The `adapt` deployment's flow, run against a real Prefect server on loopback."""
    env = {**prefect_server["env"], "TESTIMONY_MODELS": os.environ["TESTIMONY_MODELS"]}
    script = ("import sys; from flows.adapt import adapt_language; "
              "print(adapt_language('kk', out=sys.argv[1], from_model=sys.argv[2], epochs=1, held_out=0.34))")
    done = subprocess.run([sys.executable, "-c", script, str(archive), str(tiny_whisper)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    name = done.stdout.strip().splitlines()[-1].split(":")[0]
    assert name.startswith("kk-adapted-") and (archive / ".models" / f"{name}.pt.json").is_file()
    assert "epoch 1/1" in done.stdout + done.stderr, "progress goes to the run's log"
