"""Models across the air gap: install through a hub (a real HTTP server on 127.0.0.1 in the Hugging Face
hub's layout, reached by huggingface_hub's own client through HF_ENDPOINT), pack a store, unpack it
into an empty one and run a video with its routes; a changed byte anywhere is refused.

The hub serves tiny models built here: a random Whisper fine-tune folder (transformers' format) and
a Marian kk->en folder shaped like OPUS-MT's.
"""

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
from .test_hf_whisper import _random_hf
from .tiny_models.mt import build_marian_hf

WHISPER_REPO, MARIAN_REPO = "testorg/whisper-tiny-kk", "testorg/opus-mt-tiny-kk-en"
LOCAL_MANIFEST = f"""
[whisper.tiny-kk-hub]
source = "https://huggingface.co/{WHISPER_REPO}"
language = "kk"
whisper_token = "kk"
licence = "MIT"
size_mb = 1
quality = [{{ language = "kk", metric = "WER", value = 99.0, test_set = "none", source = "built by the test" }}]

[translation.marian-kk-hub]
source = "https://huggingface.co/{MARIAN_REPO}"
licence = "CC-BY-4.0"
size_mb = 1

[recommended.kk]
asr = "tiny-kk-hub"
translation = "marian-kk-hub"
"""


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub-repos")
    whisper_folder = root / "whisper-tiny-kk"
    _random_hf(1).save_pretrained(whisper_folder)
    return {WHISPER_REPO: whisper_folder, MARIAN_REPO: build_marian_hf(root / "marian")}


@pytest.fixture
def hub(repos, monkeypatch):
    served = Hub()
    for repo_id, folder in repos.items():
        served.add(repo_id, folder)
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    (config.models_dir()).mkdir(parents=True, exist_ok=True)
    (config.models_dir() / registry.LOCAL_MANIFEST).write_text(LOCAL_MANIFEST, encoding="utf-8")
    yield served
    served.close()


def _installed() -> dict[str, registry.Installed]:
    return {m.name: m for m in registry.installed_models()}


def test_install_for_a_language_through_the_hub_resumes_a_dropped_transfer(hub, capsys):
    hub.drop.add(f"{WHISPER_REPO}/model.safetensors")
    assert main(["models", "install", "--for", "kk"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"from {hub.url}/{WHISPER_REPO}" in out and f"from {hub.url}/{MARIAN_REPO}" in out
    ranged = [r for r in hub.requests if r[0] == "GET" and r[1].endswith("/model.safetensors") and r[2]]
    assert ranged and ranged[0][1].startswith(f"/{WHISPER_REPO}/"), "the cut transfer went on from its byte"
    installed = _installed()
    assert "tiny-kk-hub" in installed and installed["tiny-kk-hub"].record["licence"] == "MIT"
    assert any(m.record.get("model") == "marian-kk-hub" and m.record.get("from_code") == "kk"
               for m in installed.values())
    assert routes.resolve_asr("kk", None, None) == ("tiny-kk-hub", "kk")
    assert not (config.models_dir() / ".downloads").exists(), "the staging folder goes once imported"
    assert main(["models", "verify"]) == 0
    capsys.readouterr()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "ASR: tiny-kk-hub [installed]" in listing and "English: marian-kk-hub [installed]" in listing
    assert "kk none WER 99.0% (built by the test)" in listing


def test_a_file_unlike_its_published_hash_is_refused_and_nothing_installed(hub, capsys):
    hub.tamper.add(f"{WHISPER_REPO}/model.safetensors")
    assert main(["models", "install", "tiny-kk-hub"]) == 1
    err = capsys.readouterr().err
    assert "model.safetensors is not the file the hub publishes" in err and "nothing was installed" in err
    assert "tiny-kk-hub" not in _installed() and routes.route_for("kk").asr_model != "tiny-kk-hub"
    capsys.readouterr()
    assert main(["models"]) == 0 and "ASR: tiny-kk-hub [MISSING]" in capsys.readouterr().out
    hub.tamper.clear()
    assert main(["models", "install", "tiny-kk-hub"]) == 0, "the same command again, with the hub mended"
    assert "tiny-kk-hub" in _installed()
    fetched = [r[1] for r in hub.requests if r[0] == "GET" and r[1].endswith("/config.json")]
    assert len(fetched) == 1, "files checked in the first attempt are kept, not fetched again"


def _repack(pack: Path, out: Path, change) -> Path:
    """A copy of `pack` whose members pass through `change(name, data) -> (name, data) or None`."""
    with tarfile.open(pack) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member).read()
            changed = change(member.name, data)
            if changed is None:
                continue
            info = tarfile.TarInfo(changed[0])
            info.size = len(changed[1])
            dst.addfile(info, io.BytesIO(changed[1]))
    return out


def _store_state() -> list[str]:
    root = config.models_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.is_dir() else []


@pytest.mark.slow
def test_pack_unpack_into_an_empty_store_runs_a_video_and_a_changed_pack_is_refused(
        hub, tmp_path, media, monkeypatch, capsys):
    assert main(["models", "install", "--for", "kk"]) == 0
    pack = tmp_path / "kk.testimony-pack"
    assert main(["models", "pack", str(pack), "--for", "kk"]) == 0

    offline = tmp_path / "offline-store"
    monkeypatch.setenv("TESTIMONY_MODELS", str(offline))
    monkeypatch.delenv("HF_ENDPOINT")
    bad = {
        "changed byte": _repack(pack, tmp_path / "a", lambda n, d: (n, d[:-1] + bytes([d[-1] ^ 1]))
                                if n.endswith(".safetensors") or n.endswith("model.bin") else (n, d)),
        "missing": _repack(pack, tmp_path / "b", lambda n, d: None if n.endswith("model.bin") else (n, d)),
        "unknown format": _repack(pack, tmp_path / "c", lambda n, d: (n, d.replace(b"models-pack/1", b"models-pack/9"))
                                  if n == "PACK.json" else (n, d)),
        "extra": _repack(pack, tmp_path / "d", lambda n, d: ("whisper/../../evil.pt" if n.endswith(".pt") else n, d)),
    }
    for case, path in bad.items():
        capsys.readouterr()
        assert main(["models", "unpack", str(path)]) == 1, case
        err = capsys.readouterr().err
        assert "refused" in err or "unknown pack format" in err, (case, err)
        assert _store_state() == [], f"{case}: the store is left as it was"
    assert "model.bin: changed" in _unpack_error(bad["changed byte"], capsys)

    assert main(["models", "unpack", str(pack)]) == 0
    assert routes.resolve_asr("kk", None, None) == ("tiny-kk-hub", "kk") and main(["models", "verify"]) == 0
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "kk.mp4")
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), "--language", "kk",
                 "--no-word-timestamps", "--no-fallback"]) == 0
    data = json.loads(next((tmp_path / "archive").glob("*/transcript.json")).read_text(encoding="utf-8"))
    assert data["models"]["asr"]["name"] == "tiny-kk-hub"
    assert data["models"]["translation"]["packages"][0]["name"] == "translate-kk_en-marian_kk_hub"


def _unpack_error(pack: Path, capsys) -> str:
    capsys.readouterr()
    main(["models", "unpack", str(pack)])
    return capsys.readouterr().err


def test_the_shipped_sets_name_models_the_manifest_lists():
    known, sets = registry.known_models(), registry.recommended_sets()
    assert {"kk", "ug"} <= sets.keys()
    for chosen in sets.values():
        assert known[chosen.asr].kind == "whisper" and known[chosen.asr].repo_id
        assert known[chosen.translation].kind == "translation" and known[chosen.translation].repo_id
        assert all(q["source"] and q["test_set"] for q in known[chosen.asr].quality), "every figure says where"
    assert "non-commercial" in known["nllb-200-distilled-1.3B"].licence


def test_the_shipped_sets_name_the_ctc_models_and_whisper_keeps_the_route():
    """kk and ug name the CTC models beside their sets, each with licence, size, the figures with where they
    were published, and a note that its download source is not verified; the routes stay Whisper's."""
    known, sets = registry.known_models(), registry.recommended_sets()
    omnilingual = {"omnilingual-asr-ctc-300m", "omnilingual-asr-ctc-1b"}
    assert omnilingual | {"gigaam-multilingual-large-ctc"} <= set(sets["kk"].also)
    assert omnilingual <= set(sets["ug"].also)
    assert not any(name.startswith("gigaam") for name in sets["ug"].also), "GigaAM has no Uyghur"
    for name in sets["kk"].also + sets["ug"].also:
        entry = known[name]
        assert entry.kind == "ctc" and entry.licence and entry.size_mb and "not verified" in entry.note, name
        assert all(q["source"] and q["test_set"] for q in entry.quality), name
    assert known["omnilingual-asr-ctc-300m"].licence == "Apache-2.0"
    assert known["gigaam-multilingual-large-ctc"].licence == "MIT"
    gigaam = {q["test_set"]: q["value"] for q in known["gigaam-multilingual-large-ctc"].quality}
    assert list(gigaam.values()) == [13.8, 4.4, 15.8]
    assert all("ai-sage/GigaAM-Multilingual" in q["source"] for q in known["gigaam-multilingual-large-ctc"].quality)
    for language in ("kk", "ug"):  # the CTC choice `install --for --engine ctc` takes: the CPU-sized export
        assert sets[language].ctc == "omnilingual-asr-ctc-300m" and known[sets[language].ctc].repo_id
        assert known[sets[language].madlad].kind == "translation" and known[sets[language].madlad].repo_id
    assert routes.route_for("kk").asr_model == "base" and routes.route_for("kk").engine == ""
