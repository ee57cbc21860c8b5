"""A Hugging Face hub on 127.0.0.1 for tests: repositories from folders, in the hub's own HTTP layout.

Serves what huggingface_hub's client asks for: `GET /api/models/{repo}/revision/{rev}?blobs=true`
(the file list with sizes, LFS SHA-256 and git blob ids) and `HEAD`/`GET /{repo}/resolve/{rev}/{path}`
(with `X-Repo-Commit`, `ETag`, Range requests). Two faults can be switched on per file: `drop` sends
all but the last 2 MiB of the first GET and closes the connection (the client writes 10 MiB blocks, so
a file over 12 MiB has some on disk when the line drops); `tamper` serves other bytes than the ones
whose hash the file list publishes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".model", ".spm", ".onnx")


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class Hub:
    def __init__(self) -> None:
        self.repos: dict[str, Path] = {}
        self.drop: set[str] = set()  # "repo/path" whose first GET is cut short
        self.tamper: set[str] = set()  # "repo/path" served with one byte changed
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, repo_id: str, folder: Path) -> None:
        self.repos[repo_id] = folder

    def commit(self, repo_id: str) -> str:
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def files(self, repo_id: str) -> list[Path]:
        root = self.repos[repo_id]
        return sorted(p for p in root.rglob("*") if p.is_file())

    def listing(self, repo_id: str) -> dict:
        root, siblings = self.repos[repo_id], []
        for path in self.files(repo_id):
            data = path.read_bytes()
            entry = {"rfilename": path.relative_to(root).as_posix(), "size": len(data), "blobId": _blob_sha1(data)}
            if path.suffix in LFS_SUFFIXES:
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {"id": repo_id, "modelId": repo_id, "sha": self.commit(repo_id), "private": False,
                "siblings": siblings}

    def content(self, repo_id: str, name: str) -> bytes | None:
        path = self.repos[repo_id] / name
        if not path.is_file():
            return None
        data = path.read_bytes()
        if f"{repo_id}/{name}" in self.tamper:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self._answer(body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, path, self.headers.get("Range")))
                if path.startswith("/api/models/"):
                    return self._api(path.removeprefix("/api/models/"))
                if "/resolve/" in path:
                    repo_id, rest = path.lstrip("/").split("/resolve/", 1)
                    return self._file(repo_id, rest.split("/", 1)[1], body)
                self._send(404, b"{}")

            def _api(self, rest: str) -> None:
                repo_id = rest.split("/revision/")[0]
                if repo_id not in hub.repos:
                    return self._send(404, json.dumps({"error": "Repository not found"}).encode())
                self._send(200, json.dumps(hub.listing(repo_id)).encode(), {"Content-Type": "application/json"})

            def _file(self, repo_id: str, name: str, body: bool) -> None:
                data = hub.content(repo_id, name) if repo_id in hub.repos else None
                if data is None:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                etag = hashlib.sha256(data).hexdigest() if Path(name).suffix in LFS_SUFFIXES else _blob_sha1(data)
                headers = {"X-Repo-Commit": hub.commit(repo_id), "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                if not body:
                    return self._send(200, b"", {**headers, "Content-Length": str(len(data))}, length_only=True)
                key = f"{repo_id}/{name}"
                if key in hub.drop and start == 0:
                    hub.drop.discard(key)
                    return self._cut(data, headers)
                status = 206 if start else 200
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(status, data[start:], headers)

            def _cut(self, data: bytes, headers: dict) -> None:
                """Promise the whole file, send most of it, hang up."""
                self.send_response(200)
                for key, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data[:max(len(data) // 2, len(data) - 2**21)])
                self.wfile.flush()
                self.close_connection = True

            def _send(self, status: int, payload: bytes, headers: dict | None = None, *,
                      length_only: bool = False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if not length_only:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

        return Handler
