"""The MADLAD-400 translation route with a tiny random MADLAD in the CTranslate2 form its conversions are
published in (tests/tiny_models/madlad.py, written by `python -m tests.tiny_models DIR`): import, the route that
names it, a run that cites it, `verify --reproduce`, and a second translation taken from the checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.store import routes

from . import media_factory as mf
from .test_ctc import cli
from .test_pipeline import TINY_FLAGS
from .tiny_models.argos import udhr_column
from .tiny_models.mt import build_m2m

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def madlad(tmp_path_factory) -> Path:
    """The tiny MADLAD folder, written by the same command anyone would run."""
    out = tmp_path_factory.mktemp("tiny-models")
    subprocess.run([sys.executable, "-m", "tests.tiny_models", str(out), "madlad-ct2"], cwd=REPO, check=True,
                   capture_output=True)
    return out / "madlad-ct2"


def _import(folder: Path, name: str = "madlad-tiny") -> None:
    """Import for kk and ug; a MADLAD import names itself in both routes' `translate`, as an install does."""
    done = cli("models", "import", str(folder), "--name", name, "--language", "kk", "--language", "ug")
    assert "(kk -> en)" in done.stdout and "(ug -> en)" in done.stdout
    assert f"route ug translates with {name}" in done.stdout
    assert routes.route_for("kk").translate == routes.route_for("ug").translate == name


def _store() -> Path:
    return Path(os.environ["TESTIMONY_MODELS"]) / "argos"


def test_the_tiny_model_has_the_published_layout_and_its_tokens(madlad, tmp_path):
    """The files of a published conversion, and the source tokenized as MADLAD's own tokenizer does it
    (the `<2en>` written before the text, a `▁` before it): an import translates exactly that."""
    from transformers import T5Tokenizer

    from pipeline.stages import translate as mt

    assert sorted(p.name for p in madlad.iterdir()) == ["README.md", "config.json", "model.bin",
                                                       "shared_vocabulary.json", "spiece.model"]
    config = json.loads((madlad / "config.json").read_text(encoding="utf-8"))
    assert config["decoder_start_token"] == "<pad>" and config["eos_token"] == "</s>"
    _import(madlad)
    package = _store() / "translate-kk_en-madlad_tiny"
    meta = json.loads((package / "metadata.json").read_text(encoding="utf-8"))
    assert (meta["source_text_prefix"], meta["licence"], meta["origin_kind"]) == ("<2en> ", "Apache-2.0", "ct2-madlad")
    assert "target_prefix" not in meta and "source_prefix" not in meta
    hop = mt._load(mt._store(None), "kk", "en", package)
    tokenizer = T5Tokenizer.from_pretrained(str(_spm_folder(madlad, tmp_path)), extra_ids=0)
    for line in udhr_column("kk")[:3] + udhr_column("ug")[:3]:
        reference = tokenizer.convert_ids_to_tokens(tokenizer.encode("<2en> " + line))
        assert [*hop.tokenizer.encode(hop.text_prefix + line), "</s>"] == reference  # </s>: add_source_eos


def _spm_folder(madlad: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "hf-tokenizer"
    folder.mkdir()
    (folder / "spiece.model").write_bytes((madlad / "spiece.model").read_bytes())
    return folder


def test_an_import_without_the_target_token_is_refused(madlad, tmp_path):
    broken = tmp_path / "no-ug"
    broken.mkdir()
    for item in madlad.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    vocab = json.loads((madlad / "shared_vocabulary.json").read_text(encoding="utf-8"))
    (broken / "shared_vocabulary.json").write_text(json.dumps(["<2xx>" if t == "<2ug>" else t for t in vocab]))
    done = cli("models", "import", str(broken), "--language", "ug", check=False)
    assert done.returncode != 0 and "this MADLAD model has no <2ug> token, so it does not cover Uyghur" in done.stderr


def test_a_route_to_a_missing_madlad_names_the_install(madlad):
    _import(madlad)
    routes.set_route("kk", translate="madlad400-3b-mt")
    listing = cli("models").stdout
    assert "`testimony models install madlad400-3b-mt --language kk`" in listing
    assert "madlad400-3b-mt" in listing.split("Known", 1)[1] and "Apache-2.0" in listing.split("Known", 1)[1]
    routes.set_route("kk", translate="madlad-tiny")
    assert "kk -> en (translate-kk_en-madlad_tiny)" in cli("models").stdout


def test_a_run_on_the_madlad_route_cites_it_and_reproduces(madlad, media, tiny_whisper, tmp_path, monkeypatch):
    from pipeline.run import steps
    from pipeline.stages.checkpoint import Checkpoint

    _import(madlad)
    routes.set_route("kk", translate="madlad-tiny")
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    archive = tmp_path / "archive"
    cli("run", str(video), "--out", str(archive), "--language", "kk", "--asr-model", str(tiny_whisper),
        "--no-diarize", *TINY_FLAGS)
    bundle = next(p for p in archive.iterdir() if p.is_dir() and (p / "transcript.json").is_file())
    data = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    package = data["models"]["translation"]["packages"][0]
    record = json.loads((_store() / "translate-kk_en-madlad_tiny.json").read_text(encoding="utf-8"))
    assert package["name"] == "translate-kk_en-madlad_tiny"
    assert package["sha256"] == record["files"]["model/model.bin"] and record["model"] == "madlad-tiny"
    segments = [s for s in data["segments"] if s["text"].strip()]
    assert segments and all(s["translation"] is not None and s["english_source"] == "machine" for s in segments)
    done = cli("verify", bundle.name[:12], "--out", str(archive), "--reproduce")
    assert "every segment re-derived from the original matches" in done.stderr

    # A second translation of the same texts comes from the checkpoint: the model is not asked again.
    texts = [s["text"] for s in data["segments"]]
    checkpoint = tmp_path / "translate.jsonl"
    first = steps.translate_english("kk", texts, checkpoint=Checkpoint(checkpoint))
    assert first.english == [s["translation"] for s in data["segments"]], "the same English as the run's"
    monkeypatch.setattr("pipeline.stages.translate.translate_texts", _refuse)
    again = steps.translate_english("kk", texts, checkpoint=Checkpoint(checkpoint))
    assert again.english == first.english and again.route == first.route == data["models"]["translation"]


def test_a_hugging_face_madlad_folder_imports_and_routes(tmp_path):
    """The layout google/madlad400-3b-mt has on the hub (transformers: config.json, model.safetensors,
    spiece.model), converted on import into the same kind of package, routed by its name, and translating;
    without its SentencePiece model it is refused naming the file."""
    from pipeline.stages.translate import translate_texts

    subprocess.run([sys.executable, "-m", "tests.tiny_models", str(tmp_path), "madlad-hf"], cwd=REPO, check=True,
                   capture_output=True)
    folder = tmp_path / "madlad-hf"
    assert {"config.json", "model.safetensors", "spiece.model"} <= {p.name for p in folder.iterdir()}
    done = cli("models", "import", str(folder), "--name", "madlad-hf-tiny", "--language", "ug")
    assert "(ug -> en)" in done.stdout and routes.route_for("ug").translate == "madlad-hf-tiny"
    meta = json.loads((_store() / "translate-ug_en-madlad_hf_tiny" / "metadata.json").read_text(encoding="utf-8"))
    assert (meta["origin_kind"], meta["source_text_prefix"], meta["licence"]) == ("madlad", "<2en> ", "Apache-2.0")
    [english] = translate_texts([udhr_column("ug")[0]], "ug", model="madlad-hf-tiny")
    assert english.strip(), "the converted model translates"
    (folder / "spiece.model").unlink()
    refused = cli("models", "import", str(folder), "--name", "madlad-hf-2", "--language", "ug", check=False)
    assert refused.returncode != 0 and "spiece.model" in refused.stderr and str(folder) in refused.stderr


def _refuse(*_args, **_kwargs):
    raise AssertionError("translated again instead of reading the checkpoint")


def test_a_madlad_route_travels_in_a_pack(madlad, tmp_path, monkeypatch):
    """`models pack --for kk` carries the MADLAD package and the route that names it; unpacked into an
    empty store it translates as before, citing the same weights."""
    from pipeline.run.steps import translation_record

    _import(madlad)
    routes.set_route("kk", translate="madlad-tiny")
    before = translation_record("kk")
    cli("models", "pack", "--for", "kk", str(tmp_path / "kk.pack"))
    monkeypatch.setenv("TESTIMONY_MODELS", str(tmp_path / "empty-store"))
    cli("models", "unpack", str(tmp_path / "kk.pack"))
    assert routes.route_for("kk").translate == "madlad-tiny"
    after = translation_record("kk")
    assert after == before and after["packages"][0]["sha256"], "the same package, its hash on record"
    assert "kk -> en (translate-kk_en-madlad_tiny)" in cli("models").stdout


def test_the_shipped_madlad_entry_installs_through_the_hub(madlad, monkeypatch, capsys):
    """`models install madlad400-3b-mt` through a local hub serving the tiny MADLAD under the shipped
    manifest's repository: every file checked, one package per language, then routed by name."""
    from pipeline.cli.main import main
    from pipeline.run.steps import translation_record
    from pipeline.store import registry

    from .hub_server import Hub

    known = registry.known_models()["madlad400-3b-mt"]
    served = Hub()
    served.add(known.repo_id, madlad)
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    try:
        assert main(["models", "install", "madlad400-3b-mt", "--language", "kk", "--language", "ug"]) == 0, \
            capsys.readouterr().err
    finally:
        served.close()
    assert known.licence == "Apache-2.0" and known.repo_id in capsys.readouterr().out
    routes.set_route("ug", translate="madlad400-3b-mt")
    record = translation_record("ug")
    assert record["packages"][0]["name"] == "translate-ug_en-madlad400_3b_mt" and record["packages"][0]["sha256"]


def test_the_shipped_sets_install_ctc_and_madlad_and_travel(madlad, tmp_path, monkeypatch):
    """`install --for kk,ug --engine ctc --translation madlad` with the shipped sets, through a local hub
    serving the tiny CTC export and the tiny MADLAD under the shipped repositories: each model downloaded
    once for both languages, both routes name the CTC model (engine ctc) and MADLAD (`translate`); a
    command that leaves MADLAD out names the command that adds it; `pack --for kk` carries both and
    unpacked into an empty store the route is the same."""
    from pipeline.run.steps import translation_record
    from pipeline.store import registry

    from .hub_server import Hub
    from .tiny_models import omnilingual_ctc

    sets, known = registry.recommended_sets(), registry.known_models()
    ctc, mt = sets["kk"].ctc, sets["kk"].madlad
    assert (ctc, mt) == (sets["ug"].ctc, sets["ug"].madlad) == ("omnilingual-asr-ctc-300m", "madlad400-3b-mt")
    served = Hub()
    served.add(known[ctc].repo_id, omnilingual_ctc(tmp_path / "ctc"))
    served.add(known[mt].repo_id, madlad)
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    try:
        done = cli("models", "install", "--for", "kk,ug", "--engine", "ctc", "--translation", "madlad")
        partial = cli("models", "install", "--for", "kk", "--engine", "ctc", check=False)
    finally:
        served.close()
    assert f"route kk, ug -> {ctc} (engine ctc)" in done.stdout and f"route ug translates with {mt}" in done.stdout
    assert f"also: {ctc}" not in done.stdout and "also: omnilingual-asr-ctc-1b" in done.stdout, "the rest offered"
    assert sum(method == "GET" and path.endswith(("model.int8.onnx", "model.bin"))
               for method, path, _range in served.requests) == 2, "each model downloaded once, for both"
    for language in ("kk", "ug"):
        route = routes.route_for(language)
        assert (route.asr_model, route.engine, route.translate) == (ctc, "ctc", mt), language
    assert (f"kk: MADLAD-400 translation {mt} exists; to install and route it: "
            "testimony models install --for kk --engine ctc --translation madlad") in partial.stdout
    assert partial.returncode == 1 and "could not download issai/tilmash" in partial.stderr

    before = translation_record("kk")
    cli("models", "pack", "--for", "kk", str(tmp_path / "kk.pack"))
    monkeypatch.setenv("TESTIMONY_MODELS", str(tmp_path / "empty-store"))
    unpacked = cli("models", "unpack", str(tmp_path / "kk.pack")).stdout
    assert f"installed ctc/{ctc}" in unpacked and "installed argos/translate-kk_en-madlad400_3b_mt" in unpacked
    route = routes.route_for("kk")
    assert (route.asr_model, route.engine, route.translate) == (ctc, "ctc", mt)
    assert translation_record("kk") == before and not routes.route_for("ug").translate

    served = Hub()  # the plain set's translation (tilmash, an NLLB fine-tune): the MADLAD pin goes
    served.add(known[sets["kk"].translation].repo_id, build_m2m(tmp_path / "tilmash", "nllb"))
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    try:
        cli("models", "install", "--for", "kk", "--engine", "ctc")
    finally:
        served.close()
    route, tilmash = routes.route_for("kk"), sets["kk"].translation
    assert (route.asr_model, route.engine, route.translate) == (ctc, "ctc", tilmash), "the set's translation again"
    assert translation_record("kk")["packages"][0]["name"] != before["packages"][0]["name"], "and runs use it"
