"""Which server on a port serve may adopt: only the one holding this archive's owner token. A small
HTTP server stands in for whatever answers there (another archive's Prefect, one with other
credentials, one that holds our token); the real two-serves case is tests/test_serve_archives.py."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flows.server import OWNER_VARIABLE, PortTaken, owner_token, start_or_reuse


def _answering(status: int, body: dict | None = None) -> ThreadingHTTPServer:
    """/api/health answers 200 (as Prefect's does for anyone); the owner variable answers `status`."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            code, data = (200, {}) if self.path == "/api/health" else (status, body or {})
            if self.path not in ("/api/health", f"/api/variables/name/{OWNER_VARIABLE}"):
                code, data = 404, {}
            payload = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("status, value", [(401, None), (200, "another archive's token"), (404, None)],
                         ids=["other-credentials", "other-archive", "no-token"])
def test_a_server_without_this_archives_token_is_refused(tmp_path: Path, status, value):
    owner_token(tmp_path)  # this archive once started a server of its own
    server = _answering(status, {"name": OWNER_VARIABLE, "value": value})
    port = server.server_address[1]
    try:
        with pytest.raises(PortTaken) as refused:
            start_or_reuse("127.0.0.1", port, archive=tmp_path, auth_string="a:secret", timeout=5)
    finally:
        server.shutdown()
    assert str(refused.value) == (f"port {port} on 127.0.0.1 is taken by a Prefect server this archive did not "
                                  "start; pass --port with a free port")


def test_the_server_holding_this_archives_token_is_reused(tmp_path: Path):
    server = _answering(200, {"name": OWNER_VARIABLE, "value": owner_token(tmp_path)})
    try:
        reused = start_or_reuse("127.0.0.1", server.server_address[1], archive=tmp_path, auth_string="a:b")
    finally:
        server.shutdown()
    assert reused.process is None, "reused, not started"
    assert (tmp_path / ".prefect" / "owner-token").stat().st_mode & 0o777 == 0o600


def test_a_port_another_program_listens_on_is_refused_before_anything_starts(tmp_path: Path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(PortTaken, match=f"port {port} on 127.0.0.1 is taken by another program; pass --port"):
            start_or_reuse("127.0.0.1", port, archive=tmp_path, timeout=5)
    assert not (tmp_path / ".prefect" / "server.log").exists(), "no Prefect server was started"
