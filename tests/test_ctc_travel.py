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
from .test_ctc import cli
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
ctc = "tiny-ctc-hub"
also = ["gigaam-multilingual-large-ctc", "omnilingual-asr-ctc-300m"]
"""
# Sets as the shipped ones are laid out: a Whisper `asr` (the tiny checkpoint, imported by the test, so
# nothing is downloaded for it) and a `ctc` choice, one from the hub, one (GigaAM) that no hub serves.
SETS = f"""
[ctc.tiny-ctc-hub]
source = "https://huggingface.co/{REPO_ID}"
licence = "Apache-2.0"
size_mb = 1

[whisper.tiny-kk]
source = "https://huggingface.co/testorg/not-served"
language = "kk"
licence = "MIT"

[recommended.kk]
asr = "tiny-kk"
ctc = "tiny-ctc-hub"
also = ["gigaam-multilingual-large-ctc"]

[recommended.ug]
ctc = "tiny-ctc-hub"

[recommended.ky]
ctc = "gigaam-multilingual-large-ctc"
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


def _sets(tiny_whisper: Path) -> None:
    """SETS as the store's local manifest, with kk routed to the tiny Whisper its set names."""
    (config.models_dir() / registry.LOCAL_MANIFEST).write_text(SETS, encoding="utf-8")
    cli("models", "import", str(tiny_whisper), "--name", "tiny-kk", "--language", "kk")


def test_install_for_engine_ctc_installs_and_routes_the_sets_ctc_model(hub, tiny_whisper):
    """Without --engine, `install --for` keeps the Whisper route and names the set's CTC model with the
    exact command; that command installs and routes it, engine ctc; another language's set with the same
    model routes it without a second download; the plain `--for` routes Whisper again."""
    _sets(tiny_whisper)
    plain = cli("models", "install", "--for", "kk").stdout
    assert "tiny-kk is installed already (kk)" in plain and "also: gigaam-multilingual-large-ctc" in plain
    [line] = [line for line in plain.splitlines() if "CTC model" in line]
    assert line == ("kk: CTC model (engine ctc) tiny-ctc-hub exists; to install and route it: "
                    "testimony models install --for kk --engine ctc")
    assert _route("kk") == ("tiny-kk", "") and not registry.find_installed("tiny-ctc-hub")

    done = cli(*line.split("route it: testimony ", 1)[1].split())
    assert "as CTC model 'tiny-ctc-hub'; route kk -> tiny-ctc-hub (engine ctc)" in done.stdout
    assert "exists; to install" not in done.stdout, "no hint for the choice taken"
    again = cli("models", "install", "--for", "ug", "--engine", "ctc").stdout
    assert "tiny-ctc-hub is installed already (ug)" in again
    assert _route("kk") == _route("ug") == ("tiny-ctc-hub", "ctc") and routes.route_for("kk").whisper_token == ""
    assert sum(method == "GET" and path.endswith("/model.int8.onnx") for method, path, _range in hub.requests) == 1
    assert cli("models", "verify").returncode == 0

    assert "tiny-kk is installed already (kk)" in cli("models", "install", "--for", "kk").stdout
    assert _route("kk") == ("tiny-kk", "") and _route("ug") == ("tiny-ctc-hub", "ctc")


def test_a_set_whose_ctc_model_no_hub_serves_is_refused_whole(hub, tiny_whisper):
    """GigaAM has no hub ONNX export: `--engine ctc` says how to export and import it in one line and exits 2,
    without installing the other language's model either; the plain `--for` names the same steps."""
    _sets(tiny_whisper)
    refused = cli("models", "install", "--for", "ug,ky", "--engine", "ctc", check=False)
    [line] = refused.stderr.splitlines()
    assert refused.returncode == 2 and line.startswith("error: ky: gigaam-multilingual-large-ctc is not on a hub")
    assert "nothing was installed" in line and "onnx_converter" in line and "testimony models import FOLDER" in line
    assert not hub.requests and not registry.find_installed("tiny-ctc-hub") and _route("ug") == ("", "")
    plain = cli("models", "install", "--for", "ky").stdout
    assert "ky: CTC model (engine ctc) gigaam-multilingual-large-ctc exists; to install and route it: export" in plain
    unnamed = cli("models", "install", "--for", "kk", "--translation", "madlad", check=False)
    assert unnamed.returncode == 2 and "the recommended set for kk names no madlad model" in unnamed.stderr
    named = cli("models", "install", "tiny-ctc-hub", "--engine", "ctc", check=False)
    assert named.returncode == 2 and "--engine and --translation choose within the recommended sets" in named.stderr


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


def test_pack_and_unpack_carry_a_ctc_model_and_its_route(hub, tmp_path, media, monkeypatch, capsys):
    """A set's CTC model installed with `install --for kk --engine ctc` travels with its route."""
    assert main(["models", "install", "--for", "kk", "--engine", "ctc"]) == 0, capsys.readouterr().err
    pack = tmp_path / "kk.testimony-pack"
    assert main(["models", "pack", str(pack), "--for", "kk"]) == 0
    with tarfile.open(pack) as tar:
        members = set(tar.getnames())
    assert {"ctc/tiny-ctc-hub/model.int8.onnx", "ctc/tiny-ctc-hub/tokens.txt", "ctc/tiny-ctc-hub.json"} <= members

    monkeypatch.setenv("TESTIMONY_MODELS", str(tmp_path / "offline-store"))
    forged = _rewrite(pack, tmp_path / "forged.testimony-pack", "ctc/tiny-ctc-hub/model.int8.onnx")
    capsys.readouterr()
    assert main(["models", "unpack", str(forged)]) == 1
    err = capsys.readouterr().err
    assert "ctc/tiny-ctc-hub/model.int8.onnx: changed (its record says sha256" in err and "refused" in err
    assert registry.installed_models() == [] and _route("kk") == ("base", "")

    assert main(["models", "unpack", str(pack)]) == 0
    assert "installed ctc/tiny-ctc-hub" in capsys.readouterr().out
    assert _route("kk") == ("tiny-ctc-hub", "ctc") and main(["models", "verify"]) == 0
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "kk.mp4")
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), "--language", "kk", "--no-translate",
                 "--no-diarize"]) == 0
    data = json.loads(next((tmp_path / "archive").glob("*/transcript.json")).read_text(encoding="utf-8"))
    assert data["models"]["asr"]["name"] == "tiny-ctc-hub" and data["segments"], "the unpacked model transcribed"
