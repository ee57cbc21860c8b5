"""The model store from the command line: routes, import by contents, verify, remove (real files, offline)."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch

from pipeline import config
from pipeline.cli.main import main
from pipeline.store import routes
from pipeline.store.ct2_to_openai import packaged_base_parts

from . import media_factory as mf
from .tiny_models.argos import build_tiny_argos_package

TINY_FLAGS = ["--no-word-timestamps", "--no-fallback", "--no-translate"]


@pytest.fixture(scope="module")
def ug_video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ug-media")
    mf.speak(mf.udhr("ug-Arab")[3], "ug", root / "ug.wav")
    return mf.video_from_audio(root / "ug.wav", root / "ug.mp4")


def test_listing_shows_each_route_and_what_is_missing(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "kk   Kazakh" in out and "decodes as 'kk'" in out
    assert "ug   Uyghur" in out
    assert "none: testimony models import PATH/TO/MODEL --language ug --whisper-token uz" in out
    assert "nllb-200-distilled-600M" in out and "CC-BY-NC-4.0" in out, "the manifest's licences are shown"
    assert "large-v3" in out and "FLEURS WER 32.4%" in out


def test_uyghur_without_a_model_names_the_command(ug_video, tmp_path, capsys):
    code = main(["run", str(ug_video), "--out", str(tmp_path / "a"), "--language", "ug"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Uyghur (ug)" in err and "testimony models import PATH/TO/MODEL --language ug --whisper-token uz" in err
    assert not (tmp_path / "a").exists(), "refused before any work, no silent fallback to base"


def test_uyghur_model_imported_over_uzbek_token_is_routed(ug_video, tiny_whisper, tmp_path, capsys):
    assert main(["models", "import", str(tiny_whisper), "--language", "ug"]) == 1, "ug needs a token"
    assert "--whisper-token uz" in capsys.readouterr().err

    assert main(["models", "import", str(tiny_whisper), "--language", "ug", "--whisper-token", "uz",
                 "--name", "ug-tiny", "--licence", "Apache-2.0"]) == 0
    assert "route ug -> ug-tiny (decoding with 'uz')" in capsys.readouterr().out
    assert routes.route_for("ug").asr_model == "ug-tiny"
    assert main(["models"]) == 0
    assert "ug-tiny" in capsys.readouterr().out

    archive = tmp_path / "archive"
    assert main(["run", str(ug_video), "--out", str(archive), "--language", "ug", *TINY_FLAGS]) == 0
    bundle = Path(capsys.readouterr().out.split("\t")[0])
    transcript = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert transcript["language"] == "ug", "reported as Uyghur"
    asr = transcript["models"]["asr"]
    assert asr["whisper_token"] == "uz" and asr["name"] == "ug-tiny" and asr["licence"] == "Apache-2.0"


def test_verify_finds_changed_missing_and_extra_files_and_remove_cleans_routes(tiny_whisper, tmp_path, capsys):
    package = build_tiny_argos_package(tmp_path / "build", "kk", "en")
    assert main(["models", "import", str(package)]) == 0
    assert main(["models", "import", str(tiny_whisper), "--name", "kk-tiny", "--language", "kk"]) == 0
    assert main(["models", "verify"]) == 0
    assert "2 model(s) checked, 0 problem(s)" in capsys.readouterr().out

    checkpoint = config.whisper_dir() / "kk-tiny.pt"
    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the weights
    checkpoint.write_bytes(bytes(data))
    pkg_dir = config.argos_dir() / "translate-kk_en-0_1"
    (pkg_dir / "sentencepiece.model").unlink()
    (pkg_dir / "notes.txt").write_text("added later")
    assert main(["models", "verify"]) == 1
    out = capsys.readouterr().out
    assert "CHANGED    kk-tiny: kk-tiny.pt" in out
    assert "MISSING    translate-kk_en-0_1: sentencepiece.model" in out
    assert "EXTRA      translate-kk_en-0_1: notes.txt" in out

    assert main(["models", "remove", "kk-tiny"]) == 0
    out = capsys.readouterr().out
    assert "route kk no longer names kk-tiny" in out
    assert not checkpoint.exists() and not checkpoint.with_name("kk-tiny.pt.json").exists()
    assert routes.route_for("kk").asr_model == "base", "back to the checked-in default"
    assert main(["models", "remove", "kk-tiny"]) == 1


def test_argos_route_and_pinned_pivot(tmp_path, capsys):
    for pair in [("kk", "en"), ("kk", "ru"), ("ru", "en")]:
        assert main(["models", "import", str(build_tiny_argos_package(tmp_path / "b", *pair))]) == 0
    capsys.readouterr()
    main(["models"])
    assert "English: kk -> en (translate-kk_en-0_1)" in capsys.readouterr().out
    routes.set_route("kk", translate_via="ru")
    main(["models"])
    assert "English: kk -> ru -> en (translate-kk_ru-0_1, translate-ru_en-0_1)" in capsys.readouterr().out


def test_unknown_files_and_names_are_refused_clearly(tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    assert main(["models", "import", str(text)]) == 1
    assert "neither an Argos package nor an openai-whisper checkpoint" in capsys.readouterr().err
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    assert main(["models", "import", str(folder)]) == 1
    assert "not a model this store knows" in capsys.readouterr().err
    assert main(["models", "install", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_base_imported_from_ctranslate2_folder_and_used(converted_base, media, tmp_path, capsys):
    """The real Whisper base, as a faster-whisper folder, through `models import` and `run`."""
    parts = packaged_base_parts()
    folder = tmp_path / "faster-whisper-base"
    folder.mkdir()
    with open(folder / "model.bin", "wb") as joined:  # the published form: one model.bin
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, joined)
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copy(parts[0].parent / name, folder / name)

    assert main(["models", "import", str(folder), "--name", "base-imported", "--language", "en"]) == 0
    imported = torch.load(config.whisper_dir() / "base-imported.pt", weights_only=True)
    reference = torch.load(converted_base, weights_only=True)
    assert imported["dims"] == reference["dims"]
    heads = [gzip.decompress(base64.b85decode(c["alignment_heads"])) for c in (imported, reference)]
    assert heads[0] == heads[1], "word-timestamp heads kept"
    for key, tensor in reference["model_state_dict"].items():
        assert torch.equal(imported["model_state_dict"][key], tensor), key

    capsys.readouterr()
    video = mf.video_from_audio(media / "en.wav", tmp_path / "en.mp4")
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), "--language", "en", "--no-translate"]) == 0
    bundle = Path(capsys.readouterr().out.strip().split("\t")[0])
    transcript = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert transcript["models"]["asr"]["name"] == "base-imported"
    text = " ".join(s["text"] for s in transcript["segments"]).lower()
    assert "liberty" in text and "security" in text


@pytest.mark.slow
def test_auto_detected_language_is_decoded_with_its_route(converted_base, tiny_whisper, media, tmp_path, capsys):
    """base detects English, and the English route's own model decodes it."""
    assert main(["models", "import", str(converted_base), "--name", "base"]) == 0
    assert main(["models", "import", str(tiny_whisper), "--name", "en-tiny", "--language", "en"]) == 0
    capsys.readouterr()
    video = mf.video_from_audio(media / "en.wav", tmp_path / "en.mp4")
    assert main(["run", str(video), "--out", str(tmp_path / "archive"), *TINY_FLAGS]) == 0
    bundle = Path(capsys.readouterr().out.strip().split("\t")[0])
    transcript = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert transcript["detected_language"] == "en" and transcript["language"] == "en"
    assert transcript["models"]["asr"]["name"] == "en-tiny", "decoded by the route's model, not the detector"

    capsys.readouterr()
    assert main(["run", str(video), "--out", str(tmp_path / "pinned"), "--asr-model", "base", *TINY_FLAGS]) == 0
    bundle = Path(capsys.readouterr().out.strip().split("\t")[0])
    transcript = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert transcript["models"]["asr"]["name"] == "base", "a model the user names is not rerouted"


def test_nllb_folder_becomes_one_package_per_language(tmp_path, capsys):
    from .tiny_models.mt import build_m2m

    folder = build_m2m(tmp_path / "nllb", "nllb")
    assert main(["models", "import", str(folder)]) == 1, "a multilingual model needs --language"
    assert "--language kk --language ug" in capsys.readouterr().err
    assert main(["models", "import", str(folder), "--language", "kk", "--language", "ug"]) == 0
    out = capsys.readouterr().out
    assert "(kk -> en)" in out and "(ug -> en)" in out
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    kk_block = listing.split("kk   Kazakh", 1)[1].split("\n  ug", 1)[0]
    assert "English: kk -> en" in kk_block
    assert "CC-BY-NC-4.0" in listing.split("Installed:", 1)[1].split("Known", 1)[0], "licence on record"
    assert main(["models", "verify"]) == 0


def test_import_of_a_missing_path_names_it_once(tmp_path, capsys):
    from pipeline.cli.main import main

    missing = tmp_path / "no-such-model.pt"
    assert main(["models", "import", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count(str(missing)) == 1 and "does not exist" in err
