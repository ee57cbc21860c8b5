"""Where things live, and the privacy defaults every entry point applies first."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = Path(__file__).resolve().parent / "store" / "defaults"  # the manifest and routes, shipped as package data


def source_checkout() -> Path | None:
    """The repository this code runs from, or None when it is installed (a wheel, `pip install .`)."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "models").is_dir():
        return REPO_ROOT
    return None


def user_data_home() -> Path:
    """Where an installed testimony keeps its state: `$XDG_DATA_HOME/testimony`, else ~/.local/share."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "testimony"


def _home(folder: str) -> Path:
    """`folder` in the source checkout (today's layout), else in the user's data folder."""
    checkout = source_checkout()
    return checkout / folder if checkout else user_data_home() / folder


def models_dir() -> Path:
    """The model store: `TESTIMONY_MODELS`, else `models/` of a source checkout (git ignores the
    weights), else `testimony/models` in the user's data folder."""
    return Path(os.environ.get("TESTIMONY_MODELS") or _home("models"))


def whisper_dir() -> Path:
    return models_dir() / "whisper"


def argos_dir() -> Path:
    return models_dir() / "argos"


def archive_dir(out: str | os.PathLike | None = None) -> Path:
    """The archive root: `--out`, else `TESTIMONY_OUT`, else `transcripts/`."""
    return Path(out or os.environ.get("TESTIMONY_OUT") or "transcripts")


def data_dir() -> Path:
    """Service state (the Prefect server's home and database): `TESTIMONY_DATA`, else `data/` of a
    source checkout, else `testimony/data` in the user's data folder."""
    return Path(os.environ.get("TESTIMONY_DATA") or _home("data"))


DEFAULT_FILE_MODE = 0o600


def file_mode() -> int:
    """Mode of every file we write into the archive: `TESTIMONY_FILE_MODE` (octal), else owner-only 0600.

    0640 lets a group read the bundles; the owner must keep read and write access.
    """
    raw = (os.environ.get("TESTIMONY_FILE_MODE") or "").strip()
    if not raw:
        return DEFAULT_FILE_MODE
    try:
        mode = int(raw, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        from pipeline.errors import TestimonyError

        raise TestimonyError(f"TESTIMONY_FILE_MODE={raw!r} is not a file mode the owner can read and write: "
                             "use octal such as 600 (owner only, the default) or 640 (group may read)")
    return mode


def dir_mode(mode: int | None = None) -> int:
    """The folder mode matching a file mode: each read bit brings its search (execute) bit."""
    mode = file_mode() if mode is None else mode
    return mode | (mode & 0o444) >> 2


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine): its half-made files are not stale yet.

    Our own id is alive: another thread of this process (`serve` runs flows and the review workspace
    side by side) may be writing the file right now.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_dirs(path: str | os.PathLike) -> Path:
    """Create `path` and any missing parents with `dir_mode()`; folders that already exist keep their mode."""
    target = Path(path)
    missing = []
    current = target
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    mode = dir_mode()
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:  # made by a concurrent run
            continue
        except FileNotFoundError:  # a parent just made was removed as empty (another video's run
            return private_dirs(path)  # leaving `.work/`) before its child was made: make them again
        os.chmod(folder, mode)  # mkdir's mode passes through the umask
    return target


PRIVACY_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_V2_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def apply_privacy_defaults() -> None:
    """Telemetry off unless the user set these explicitly; TESTIMONY_AUTH is also the Prefect client's
    credentials (a `testimony run` against serve's server), unless PREFECT_API_AUTH_STRING is set."""
    for key, value in PRIVACY_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get("TESTIMONY_AUTH"):
        os.environ.setdefault("PREFECT_API_AUTH_STRING", os.environ["TESTIMONY_AUTH"])
