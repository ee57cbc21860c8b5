"""Where things live, and the privacy defaults every entry point applies first."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """The model store: `TESTIMONY_MODELS`, else `models/` beside the code (git ignores the weights)."""
    return Path(os.environ.get("TESTIMONY_MODELS") or REPO_ROOT / "models")


def whisper_dir() -> Path:
    return models_dir() / "whisper"


def argos_dir() -> Path:
    return models_dir() / "argos"


def archive_dir(out: str | os.PathLike | None = None) -> Path:
    """The archive root: `--out`, else `TESTIMONY_OUT`, else `transcripts/`."""
    return Path(out or os.environ.get("TESTIMONY_OUT") or "transcripts")


def data_dir() -> Path:
    """Service state (the Prefect server's home and database): `TESTIMONY_DATA`, else `data/` here."""
    return Path(os.environ.get("TESTIMONY_DATA") or REPO_ROOT / "data")


PRIVACY_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_V2_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def apply_privacy_defaults() -> None:
    """Telemetry off unless the user set these explicitly."""
    for key, value in PRIVACY_ENV.items():
        os.environ.setdefault(key, value)
