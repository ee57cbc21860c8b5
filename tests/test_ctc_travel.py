"""CTC models travel like the others: installed through the hub (the local one the tests run, in the Hugging
Face layout) from a manifest entry, and carried by `models pack`/`unpack`, every file's SHA-256 checked
on the way in; a tiny Omnilingual-CTC export built here stands for the real one."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from pipeline import config
from pipeline.cli.main import main
from pipeline.store import registry, routes

from . import media_factory as mf
from .hub_server import Hub
from .tiny_models import omnilingual_ctc

REPO_ID = "testorg/omnilingual-ctc-tiny"
MANIFEST = f"""
[ctc.tiny-ctc-hub]
source = "https://huggingface.co/{REPO_ID}"
language = "kk"
licence = "Apache-2.0"
size_mb = 1

[recommended.kk]
asr = "tiny-ctc-hub"
also = ["gigaam-multilingual-large-ctc", "omnilingual-asr-ctc-300m"]
"""


@pytest.fixture
def hub(tmp_path_factory, monkeypatch):
    served = Hub()
    served.add(REPO_ID, omnilingual_ctc(tmp_path_factory.mktemp("hub") / "omnilingual-ctc-tiny"))
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    config.models_dir().mkdir(parents=True, exist_ok=True)
    (config.models_dir() / registry.LOCAL_MANIFEST).write_text(MANIFEST, encoding="utf-8")
    yield served
    served.close()


def _route(language: str) -> tuple[str, str]:
    route = routes.route_for(language)
    return route.asr_model, route.engine


def test_a_ctc_model_installs_through_the_hub_for_its_language(hub, capsys):
    hub.tamper.add(f"{REPO_ID}/model.int8.onnx")
    assert main(["models", "install", "--for", "kk"]) == 1
    assert "model.int8.onnx is not the file the hub publishes" in capsys.readouterr().err
    assert _route("kk") == ("base", ""), "a refused download leaves Whisper base routed"
    hub.tamper.clear()
    assert main(["models", "install", "--for", "kk"]) == 0, capsys.readouterr().err
    assert "as CTC model 'tiny-ctc-hub'" in capsys.readouterr().out
    [model] = [m for m in registry.installed_models() if m.name == "tiny-ctc-hub"]
    assert model.kind == "ctc" and model.record["licence"] == "Apache-2.0"
    assert set(model.record["files"]) == {"model.int8.onnx", "tokens.txt"}
    assert _route("kk") == ("tiny-ctc-hub", "ctc") and main(["models", "verify"]) == 0
    routes.set_route("kk", asr_model="base", whisper_token="kk", engine="")
    capsys.readouterr()
    assert main(["models", "install", "--for", "kk"]) == 0
    assert "tiny-ctc-hub is installed already (kk)" in capsys.readouterr().out
    assert _route("kk") == ("tiny-ctc-hub", "ctc"), "an installed set's CTC model is routed again, with its engine"
    assert main(["models", "install", "gigaam-multilingual-large-ctc"]) == 2
    assert "no hub repository" in (err := capsys.readouterr().err) and "onnx_converter" in err


def _rewrite(pack: Path, out: Path, member: str) -> Path:
    """`pack` with one byte of `member` changed and PACK.json's hash for it updated to match, so only the
    model's own record still tells."""
    import hashlib

    with tarfile.open(pack) as src:
        members = [(m, src.extractfile(m).read()) for m in src]
    data = dict((m.name, d) for m, d in members)
    data[member] = data[member][:-1] + bytes([data[member][-1] ^ 1])
    index = json.loads(data["PACK.json"])
    index["members"][member] = hashlib.sha256(data[member]).hexdigest()
    data["PACK.json"] = json.dumps(index).encode()
    with tarfile.open(out, "w") as dst:
        for m, _ in members:
            info = tarfile.TarInfo(m.name)
            info.size = len(data[m.name])
            dst.addfile(info, io.BytesIO(data[m.name]))
    return out


def test_pack_and_unpack_carry_a_ctc_model_and_its_route(tmp_path, media, monkeypatch, capsys):
    export = omnilingual_ctc(tmp_path / "omnilingual-ctc")
    assert main(["models", "import", str(export), "--name", "kk-ctc", "--language", "kk"]) == 0
    pack = tmp_path / "kk.testimony-pack"
    assert main(["models", "pack", str(pack), "--for", "kk"]) == 0
    with tarfile.open(pack) as tar:
        assert {"ctc/kk-ctc/model.int8.onnx", "ctc/kk-ctc/tokens.txt", "ctc/kk-ctc.json"} <= set(tar.getnames())

    monkeypatch.setenv("TESTIMONY_MODELS", str(tmp_path / "offline-store"))
    forged = _rewrite(pack, tmp_path / "forged.testimony-pack", "ctc/kk-ctc/model.int8.onnx")
    capsys.readouterr()
    assert main(["models", "unpack", str(forged)]) == 1
    err = capsys.readouterr().err
    assert "ctc/kk-ctc/model.int8.onnx: changed (its record says sha256" in err and "refused" in err
    assert registry.installed_models() == [] and _route("kk") == ("base", "")

    assert main(["models", "unpack", str(pack)]) == 0
    assert "installed ctc/kk-ctc" in capsys.readouterr().out
    assert _route("kk") == ("kk-ctc", "ctc") and main(["models", "verify"]) == 0
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "kk.mp4")
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), "--language", "kk", "--no-translate",
                 "--no-diarize"]) == 0
    data = json.loads(next((tmp_path / "archive").glob("*/transcript.json")).read_text(encoding="utf-8"))
    assert data["models"]["asr"]["name"] == "kk-ctc" and data["segments"], "the unpacked model transcribed"
