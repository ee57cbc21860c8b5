"""A wheel installed outside the checkout works: the manifest and routes ship inside it, and the model
store and service state default to the user's data folder (XDG) instead of the repository's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from . import media_factory as mf

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv holding only the testimony wheel; its dependencies come from this venv by a .pth
    line (which, unlike a site folder, never runs this venv's editable-install hook)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy of the tracked files: building writes build/ into the tree
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(source)], check=True, capture_output=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "testimony-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((root / "dist").glob("testimony-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    return venv


def _run(venv: Path, args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TESTIMONY_MODELS", "TESTIMONY_DATA", "TESTIMONY_OUT", "XDG_DATA_HOME", "PYTHONPATH")}
    env["HOME"] = str(home)
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_wheel_runs_from_any_folder(installed, tiny_whisper, media, tmp_path):
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    home.mkdir()
    where = _run(installed, ["python", "-c", "import pipeline; print(pipeline.__file__)"], elsewhere, home)
    assert str(installed) in where.stdout and str(REPO) not in where.stdout, where.stdout + where.stderr

    listed = _run(installed, ["testimony", "models"], elsewhere, home)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "kk" in listed.stdout and "manifest.toml" in listed.stdout

    imported = _run(installed, ["testimony", "models", "import", str(tiny_whisper), "--name", "tiny-random"],
                    elsewhere, home)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    store = home / ".local" / "share" / "testimony" / "models"
    assert (store / "whisper" / "tiny-random.pt").is_file(), "the store defaults to the XDG data folder"

    video = mf.video_from_audio(media / "kk.wav", elsewhere / "witness.mp4", lead_silence=1.0)
    run = _run(installed, ["testimony", "run", str(video), "--language", "kk", "--asr-model", "tiny-random",
                           "--no-word-timestamps", "--no-fallback"], elsewhere, home)
    assert run.returncode == 0, run.stdout + run.stderr
    assert list((elsewhere / "transcripts").glob("*/transcript.json"))

    served = _run(installed, ["testimony", "serve", "--help"], elsewhere, home)
    assert served.returncode == 0 and "inbox" in served.stdout, served.stdout + served.stderr
