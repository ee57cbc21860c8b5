"""Nothing is fetched without a command that says so: a Whisper model that is not installed stops `run`,
`serve` and `eval` with one line naming `testimony models install NAME`, and no connection is attempted;
`models install` is where the official download lives, checked against the SHA-256 in its URL and resumed
after a dropped transfer."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import whisper

from pipeline.store import official, routes
from pipeline.store.registry import read_record

from . import media_factory as mf

REPO = Path(__file__).resolve().parent.parent
GUARD = Path(__file__).resolve().parent / "netguard"


def _cli(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, str]:
    """The CLI in a child process whose every network attempt is logged and refused."""
    log = tmp_path / "network.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(GUARD), str(REPO)]), "TESTIMONY_NETGUARD_LOG": str(log)}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    return done, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("command", ["run", "serve", "eval"])
def test_a_model_not_installed_is_one_line_naming_the_install_command(command, media, tmp_path):
    video = mf.video_from_audio(media / "en.wav", tmp_path / "witness.mp4")
    if command == "run":
        args = ["run", str(video), "--asr-model", "small", "--out", str(tmp_path / "archive")]
    elif command == "serve":
        routes.set_route("auto", asr_model="small")  # what serve decodes with, as a team may route it
        args = ["serve", "--inbox", str(tmp_path / "inbox"), "--out", str(tmp_path / "archive")]
    else:
        manifest = tmp_path / "clips.jsonl"
        manifest.write_text(json.dumps({"audio": str(video), "language": "en", "reference": "x"}) + "\n")
        args = ["eval", str(manifest), "--asr-model", "small"]
    done, attempts = _cli(args, tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode in (1, 2) and len(errors) == 1, done.stdout + done.stderr
    assert "`testimony models install small`" in errors[0] and "Traceback" not in done.stderr, done.stderr
    assert attempts == "", "a network connection was attempted:\n" + attempts
    assert not (Path(os.environ["TESTIMONY_MODELS"]) / "whisper" / "small.pt").exists()


class _RangeFiles(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes) with HTTP Range, as OpenAI's host does; records each Range asked."""

    files: dict[str, bytes] = {}
    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (the handler's name is http.server's)
        body = self.files.get(self.path)
        if body is None:
            return self.send_error(404)
        asked = self.headers.get("Range")
        self.ranges.append(asked)
        start = int(asked.removeprefix("bytes=").split("-")[0]) if asked else 0
        self.send_response(206 if asked else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def official_host(monkeypatch):
    """A local stand-in for OpenAI's host, its URL (with the file's SHA-256 in it) put in Whisper's table."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _RangeFiles.files, _RangeFiles.ranges = {}, []

    def publish(name: str, body: bytes, sha256: str | None = None) -> str:
        path = f"/models/{sha256 or hashlib.sha256(body).hexdigest()}/{name}.pt"
        _RangeFiles.files[path] = body
        monkeypatch.setitem(whisper._MODELS, name, f"http://127.0.0.1:{server.server_port}{path}")
        return whisper._MODELS[name]

    yield publish
    server.shutdown()


def test_models_install_resumes_an_official_download_and_checks_it(official_host, tiny_whisper, capsys):
    from pipeline.cli.main import main

    body = tiny_whisper.read_bytes()
    url = official_host("tiny", body)
    part = official.staging_file("tiny")
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1000])  # what a dropped transfer left
    assert main(["models", "install", "tiny"]) == 0, capsys.readouterr()
    checkpoint = Path(os.environ["TESTIMONY_MODELS"]) / "whisper" / "tiny.pt"
    assert _RangeFiles.ranges == ["bytes=1000-"], "only the missing bytes were asked for"
    assert checkpoint.read_bytes() == body and not part.exists()
    assert read_record(checkpoint)["origin"] == f"openai official ({url})"


def test_a_download_that_does_not_match_its_url_is_deleted(official_host, tiny_whisper, capsys):
    from pipeline.cli.main import main

    official_host("tiny", tiny_whisper.read_bytes(), sha256="0" * 64)
    assert main(["models", "install", "tiny"]) != 0
    err = capsys.readouterr().err
    assert "does not match its published SHA-256" in err and "nothing was installed" in err, err
    assert not official.staging_file("tiny").exists()
    assert not (Path(os.environ["TESTIMONY_MODELS"]) / "whisper" / "tiny.pt").exists()
