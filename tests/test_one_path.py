"""One orchestration for `testimony run`, the Prefect flows and retranslation: what the copies of the
stages used to disagree on, checked on the plain path (the Prefect path is in test_flow)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.archive import custody
from pipeline.cli.main import main
from pipeline.run.process import Stages, process_video, retranslate
from pipeline.stages.translate import install_package
from pipeline.store import routes
from pipeline.transcript import UNTRANSLATED, Transcript

from . import media_factory as mf
from .test_pipeline import _options
from .tiny_models.argos import build_tiny_argos_package


@pytest.fixture
def kk_video(media, tmp_path) -> Path:
    return mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)


def _install(tmp_path: Path, *pairs: tuple[str, str]) -> None:
    for pair in pairs:
        install_package(build_tiny_argos_package(tmp_path / "argos-build", *pair))


def test_a_changed_pivot_invalidates_the_translation(kk_video, tiny_whisper, tmp_path):
    _install(tmp_path, ("kk", "en"), ("kk", "ru"), ("ru", "en"))
    archive = tmp_path / "archive"
    first = process_video(kk_video, archive, _options(tiny_whisper))
    assert Transcript.load(first.bundle / "transcript.json").models["translation"]["route"] == ["kk", "en"]
    routes.set_route("kk", translate_via="ru")
    second = process_video(kk_video, archive, _options(tiny_whisper))
    assert second.status == "done", "the pinned pivot changed: the old English is stale"
    assert Transcript.load(second.bundle / "transcript.json").models["translation"]["route"] == ["kk", "ru", "en"]
    assert process_video(kk_video, archive, _options(tiny_whisper)).status == "reused"


def test_the_flow_cache_key_follows_the_pivot(tmp_path):
    from flows.process_video import _translate_key

    _install(tmp_path, ("kk", "en"), ("kk", "ru"), ("ru", "en"))
    params = {"language": "kk", "texts": ["Әркім"]}
    direct = _translate_key(None, params)
    routes.set_route("kk", translate_via="ru")
    assert _translate_key(None, params) != direct


def test_a_reused_bundle_leaves_no_work_folder(kk_video, tiny_whisper, tmp_path):
    archive = tmp_path / "archive"
    first = process_video(kk_video, archive, _options(tiny_whisper))
    assert not (archive / ".work").exists(), "no empty .work/ after a run"
    sha = hashlib.sha256(kk_video.read_bytes()).hexdigest()
    leftover = archive / ".work" / sha[:12]
    leftover.mkdir(parents=True)
    (leftover / "audio.wav").write_bytes(b"left by a run killed after publishing")
    again = process_video(kk_video, archive, _options(tiny_whisper))
    assert (again.status, again.bundle) == ("reused", first.bundle)
    assert not (archive / ".work").exists()


def test_retranslate_logs_the_publish_so_verify_accepts_it(kk_video, tiny_whisper, tmp_path, capsys):
    archive = tmp_path / "archive"
    first = process_video(kk_video, archive, _options(tiny_whisper))
    assert all(UNTRANSLATED in s.flags for s in Transcript.load(first.bundle / "transcript.json").segments)
    _install(tmp_path, ("kk", "en"))
    sha = hashlib.sha256(kk_video.read_bytes()).hexdigest()
    result = retranslate(archive, sha[:12])
    transcript = Transcript.load(result.bundle / "transcript.json")
    assert transcript.models["translation"]["route"] == ["kk", "en"]
    assert all(s.translation and UNTRANSLATED not in s.flags for s in transcript.segments)
    publishes = [e for e in custody.read(archive, sha) if e.get("name") == "publish"]
    assert len(publishes) == 2
    assert main(["verify", sha[:12], "--out", str(archive)]) == 0, capsys.readouterr().out
    assert not (archive / ".work").exists()


def test_a_wrapper_sees_every_stage_of_a_run(kk_video, tiny_whisper, tmp_path):
    """What Prefect relies on: every stage a run calls goes through the wrapper it was handed."""
    called: list[str] = []

    def wrap(name, fn):
        def stage(*args, **kwargs):
            called.append(name)
            return fn(*args, **kwargs)
        return stage

    _install(tmp_path, ("kk", "en"))
    process_video(kk_video, tmp_path / "archive", _options(tiny_whisper), stages=Stages(wrap))
    assert called == list(Stages.NAMES)
