"""Nothing leaves the machine: the whole run with every outbound socket refused, and owner-only files."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from pipeline import config
from pipeline.cli.main import main
from pipeline.run import steps as stages_module
from pipeline.transcript import UNTRANSLATED, Transcript

from . import media_factory as mf
from .test_pipeline import TINY_FLAGS
from .tiny_models.argos import build_tiny_argos_package


def _local_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host)
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _local(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", None) or isinstance(address, (str, bytes)):
        return True  # a Unix socket path
    return _local_host(address[0])


@pytest.fixture
def outbound(monkeypatch) -> list[str]:
    """Refuse and record every attempt to reach a non-loopback address (lookups included)."""
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def refuse(what: str) -> OSError:
        attempts.append(what)
        return OSError(101, f"network is unreachable in tests: {what}")

    def connect(self: socket.socket, address: Any) -> None:
        if not _local(self.family, address):
            raise refuse(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _local(self.family, address):
            raise refuse(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kw: Any) -> socket.socket:
        if not _local_host(address[0]):
            raise refuse(f"create_connection {address!r}")
        return real_create(address, *args, **kw)

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> list:
        if not _local_host(host):
            attempts.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"no name lookups in tests: {host!r}")
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def test_outbound_guard_records_and_refuses(outbound):
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(OSError):
        s.connect(("192.0.2.1", 80))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("huggingface.co", 443)
    socket.getaddrinfo("localhost", 80)  # loopback stays usable
    assert len(outbound) == 3


PRIVACY = ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "PREFECT_SERVER_ANALYTICS_ENABLED")


@pytest.mark.slow
def test_whole_run_makes_no_outbound_connection(media, converted_base, tmp_path, monkeypatch, capsys, outbound):
    """Real Whisper base and a real Argos package, kk -> en, through `testimony run` with the network cut."""
    store = Path(os.environ["TESTIMONY_MODELS"]) / "whisper"
    store.mkdir(parents=True)
    shutil.copy(converted_base, store / "base.pt")
    assert main(["models", "import", str(build_tiny_argos_package(tmp_path / "argos", "kk", "en"))]) == 0
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    for key in PRIVACY:  # the run itself must set them, whatever the test harness did
        monkeypatch.delenv(key, raising=False)
    seen: dict[str, str | None] = {}
    real_transcribe = stages_module.stage_transcribe

    def spy(*args: Any, **kw: Any):
        seen.update({key: os.environ.get(key) for key in PRIVACY})
        return real_transcribe(*args, **kw)

    monkeypatch.setattr(stages_module, "stage_transcribe", spy)
    code = main(["run", str(video), "--out", str(tmp_path / "archive"), "--language", "kk",
                 "--asr-model", "base"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert outbound == [], "something tried to leave the machine"
    assert seen == {"DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    transcript = Transcript.load(next((tmp_path / "archive").glob("*/transcript.json")))
    assert transcript.segments and transcript.models["translation"]["route"] == ["kk", "en"]
    assert all(isinstance(s.translation, str) and UNTRANSLATED not in s.flags for s in transcript.segments)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("setting,file_mode,dir_mode", [(None, 0o600, 0o700), ("0640", 0o640, 0o750)])
def test_bundle_files_are_owner_only_by_default(media, tiny_whisper, tmp_path, monkeypatch, capsys,
                                                 setting, file_mode, dir_mode):
    if setting is None:
        monkeypatch.delenv("TESTIMONY_FILE_MODE", raising=False)
    else:
        monkeypatch.setenv("TESTIMONY_FILE_MODE", setting)
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "v.mp4")
    archive = tmp_path / "new" / "archive"
    code = main(["run", str(video), "--out", str(archive), "--language", "kk", "--no-translate",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().out
    modes = _modes(archive)
    assert modes["."] == dir_mode and stat.S_IMODE((tmp_path / "new").stat().st_mode) == dir_mode
    assert ".work" not in modes, "the work folder goes once the bundle is out"
    bundle = next(archive.glob("*/transcript.json")).parent
    assert modes[bundle.name] == dir_mode
    ours = {name: mode for name, mode in modes.items()
            if name.startswith(bundle.name + "/") or name == "catalog.sqlite"}
    assert len(ours) >= 7 and set(ours.values()) == {file_mode}, ours
    wider = {name: oct(mode) for name, mode in modes.items() if mode & ~dir_mode}
    assert wider == {}, "nothing in the archive is more open than the setting"


def test_extracted_audio_is_owner_only(media, tmp_path, monkeypatch):
    from pipeline.stages.media import extract_audio, probe

    monkeypatch.delenv("TESTIMONY_FILE_MODE", raising=False)
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "v.mp4")
    audio = extract_audio(probe(video), tmp_path / "archive" / ".work" / "abc" / "audio.wav")
    assert stat.S_IMODE(audio.wav_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(audio.wav_path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("value", ["777x", "0044", "1777"])
def test_bad_file_mode_is_refused_before_work(tiny_whisper, tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv("TESTIMONY_FILE_MODE", value)
    code = main(["run", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "a"), "--language", "kk",
                 "--asr-model", str(tiny_whisper)])
    assert code == 2 and "TESTIMONY_FILE_MODE" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert config.dir_mode(0o640) == 0o750
