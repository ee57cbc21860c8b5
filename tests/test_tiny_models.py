"""`python -m tests.tiny_models DIR` writes a tiny random model in every format the store imports, and
each goes into the store through the real `testimony models import`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.cli.main import main
from pipeline.store import registry

from . import tiny_models

REPO = Path(__file__).resolve().parent.parent


def test_every_written_format_imports_into_the_store(tmp_path, capsys):
    out = tmp_path / "tiny"
    done = subprocess.run([sys.executable, "-m", "tests.tiny_models", str(out)], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == list(tiny_models.WRITERS)
    for name in tiny_models.WRITERS:
        before = len(registry.installed_models())
        capsys.readouterr()
        assert main(["models", "import", str(out / name), "--language", "kk"]) == 0, (name, capsys.readouterr().err)
        assert len(registry.installed_models()) > before, f"{name}: nothing new in the store"
    kinds = {m.name: m.kind for m in registry.installed_models()}
    assert kinds["whisper"] == "whisper" and kinds["whisper-ct2"] == "whisper", "checkpoint and CT2 folder"
    assert kinds["omnilingual-ctc"] == kinds["gigaam-ctc"] == "ctc"
    assert sum(kind == "argos" for kind in kinds.values()) >= 2, "the Argos package and the NLLB conversion"
    capsys.readouterr()
    assert main(["models", "verify"]) == 0, capsys.readouterr().out


def test_a_named_format_alone_and_an_unknown_one_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.tiny_models", str(tmp_path), "gigaam-ctc"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("gigaam-ctc:") and sorted(p.name for p in tmp_path.iterdir()) == ["gigaam-ctc"]
    bad = subprocess.run([sys.executable, "-m", "tests.tiny_models", str(tmp_path), "no-such"], cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown format(s) no-such" in bad.stderr and "nllb-ct2" in bad.stderr
