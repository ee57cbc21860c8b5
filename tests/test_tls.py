"""Beyond this machine: the workspace on another address needs TLS (or --insecure-http said on purpose);
under TLS its session cookie is Secure. 127.0.0.2 stands in for another address (it is not one of the
names we treat as this machine's own, yet nothing outside can reach it)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline.review import accounts

from .test_flow import _free_port

HOST = "127.0.0.2"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.2 and its key, made here (nothing is fetched)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _review(archive: Path, port: int, *extra: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.main", "review", "--out", str(archive), "--host", HOST,
            "--port", str(port), *extra]


def test_another_address_without_tls_is_refused_before_anything_listens(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TESTIMONY_AUTH"}
    (tmp_path / "archive").mkdir()
    done = subprocess.run(_review(tmp_path / "archive", _free_port()), env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "--tls-cert" in done.stderr and "--insecure-http" in done.stderr
    assert [line.startswith("error:") for line in done.stderr.splitlines() if "runpy" not in line] == [True]
    assert not (tmp_path / "archive" / accounts.FILE).exists(), "nothing was made"


def test_under_tls_the_workspace_answers_https_with_a_secure_cookie(tmp_path):
    archive = tmp_path / "archive"
    accounts.add(archive, "archivist", "admin", password="archivist password", must_change=False)
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    log = tmp_path / "review.log"
    proc = subprocess.Popen(_review(archive, port, "--tls-cert", str(cert), "--tls-key", str(key)),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"https://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                signin = httpx.get(url + "/signin", verify=str(cert), timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        token = signin.text.split('name="testimony-token" content="')[1].split('"')[0]
        answer = httpx.post(url + "/api/session", verify=str(cert), timeout=10,
                            content=json.dumps({"name": "archivist", "password": "archivist password"}),
                            headers={"Content-Type": "application/json", "X-Testimony-Token": token,
                                     "Origin": url})
        assert answer.status_code == 200, answer.text
        assert "Secure" in answer.headers["set-cookie"] and "HttpOnly" in answer.headers["set-cookie"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{HOST}:{port}/signin", timeout=5)  # no plain HTTP on that port
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
