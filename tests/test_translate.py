"""pipeline.stages.translate against tiny random-weight Argos packages built at test time, network refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.stages import translate
from pipeline.stages.translate import MissingTranslation, find_translator, install_package, translate_texts

from .tiny_models.argos import build_tiny_argos_package, udhr_column

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("no_network")  # the UDHR table is tracked in tests/data: always here


@pytest.fixture(scope="module")
def tiny_packages(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """kk->en, kk->ru and ru->en .argosmodel files, built once for the module."""
    work = tmp_path_factory.mktemp("argos-build")
    return {pair: build_tiny_argos_package(work, *pair) for pair in [("kk", "en"), ("kk", "ru"), ("ru", "en")]}


def _store(tmp_path: Path, packages, *pairs: tuple[str, str]) -> Path:
    store = tmp_path / "argos"
    for pair in pairs:
        install_package(packages[pair], packages_dir=store)
    return store


def test_install_layout(tmp_path, tiny_packages):
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    meta = json.loads((store / "translate-kk_en-0_1" / "metadata.json").read_text())
    assert (meta["from_code"], meta["to_code"]) == ("kk", "en")
    assert (store / "translate-kk_en-0_1" / "model" / "model.bin").is_file()
    assert (store / "translate-kk_en-0_1" / "sentencepiece.model").is_file()
    install_package(tiny_packages[("kk", "en")], packages_dir=store)  # reinstall replaces in place
    assert sorted(p.name for p in store.iterdir()) == ["translate-kk_en-0_1"]


def test_translate_udhr_kk_offline(tmp_path, tiny_packages):
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    lines = udhr_column("kk")
    assert len(lines) == 20
    out = translate_texts(lines, "kk", packages_dir=store)
    assert len(out) == 20 and all(isinstance(t, str) for t in out)
    assert len(set(out)) > 1
    info = find_translator("kk", packages_dir=store)
    assert info.route == ["kk", "en"]
    assert info.packages == [{"name": "translate-kk_en-0_1", "version": "0.1", "from": "kk", "to": "en"}]


class EchoTranslator:
    """Stands in for ctranslate2.Translator: returns each source unchanged, records the call."""

    def __init__(self):
        self.calls = []

    def translate_batch(self, source, **kwargs):
        self.calls.append((source, kwargs))
        return [SimpleNamespace(hypotheses=[list(tokens)]) for tokens in source]


def test_order_batching_and_length_cap(tmp_path, tiny_packages):
    """Exact order check with an echo model in the loaded package's place (random weights can't show order)."""
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    lines = udhr_column("kk")
    texts = lines[:10] + [""] + lines[10:] + ["  "]
    translate_texts(["Барлық"], "kk", packages_dir=store)  # load and cache the real package
    hop = translate._TRANSLATORS[(str(store.resolve()), "kk", "en")]
    echo = EchoTranslator()
    hop.translator = echo
    out = translate_texts(texts, "kk", packages_dir=store)
    expected = [hop.tokenizer.decode(hop.tokenizer.encode(t)).strip() if t.strip() else "" for t in texts]
    assert out == expected
    assert out[10] == "" and out[-1] == ""
    assert len(echo.calls) == 1  # one CTranslate2 call for the whole batch, empties skipped
    source, kwargs = echo.calls[0]
    assert len(source) == 20
    longest = max(len(tokens) for tokens in source)
    assert longest < kwargs["max_decoding_length"] <= translate.LENGTH_CEILING


class RecordingTranslator:
    """Wraps the real ctranslate2.Translator and keeps what each call produced."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def translate_batch(self, source, **kwargs):
        results = self.real.translate_batch(source, **kwargs)
        self.calls.append((source, kwargs, results))
        return results


def test_runaway_model_is_capped(tmp_path):
    """A model that never emits </s> still stops, at the cap relative to the input length."""
    pkg = build_tiny_argos_package(tmp_path / "build", "kk", "en", eos_bias=-100.0)
    store = tmp_path / "argos"
    install_package(pkg, packages_dir=store)
    translate_texts(["Барлық"], "kk", packages_dir=store)
    hop = translate._TRANSLATORS[(str(store.resolve()), "kk", "en")]
    hop.translator = RecordingTranslator(hop.translator)
    out = translate_texts(["Барлық адамдар", "Әр адам"], "kk", packages_dir=store)
    assert len(out) == 2 and all(out)
    source, kwargs, results = hop.translator.calls[0]
    cap = kwargs["max_decoding_length"]
    assert cap == int(translate.LENGTH_RATIO * max(map(len, source))) + translate.LENGTH_SLACK
    assert all(len(r.hypotheses[0]) == cap for r in results)


def test_empty_texts(tmp_path, tiny_packages):
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    out = translate_texts(["", "Барлық адамдар", "   "], "kk", packages_dir=store)
    assert out[0] == "" and out[2] == "" and isinstance(out[1], str)
    assert translate_texts([], "kk", packages_dir=store) == []


def test_missing_pair(tmp_path, tiny_packages):
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    with pytest.raises(MissingTranslation, match="ug -> en") as err:
        translate_texts(["سالام"], "ug", packages_dir=store)
    assert str(store.resolve()) in str(err.value)
    assert "testimony models import" in str(err.value)
    with pytest.raises(MissingTranslation, match="kk -> en"):
        find_translator("kk", packages_dir=tmp_path / "empty")


def test_pivot_through_russian(tmp_path, tiny_packages):
    store = _store(tmp_path, tiny_packages, ("kk", "ru"), ("ru", "en"))
    info = find_translator("kk", "en", packages_dir=store)
    assert info.route == ["kk", "ru", "en"]
    assert [(p["from"], p["to"]) for p in info.packages] == [("kk", "ru"), ("ru", "en")]
    lines = udhr_column("kk")[:5]
    out = translate_texts(lines, "kk", packages_dir=store)
    assert len(out) == 5 and all(isinstance(t, str) for t in out)
    # Composition is exactly hop 1 then hop 2.
    ru = translate_texts(lines, "kk", "ru", packages_dir=store)
    assert translate_texts(ru, "ru", "en", packages_dir=store) == out


def test_direct_beats_pivot(tmp_path, tiny_packages):
    store = _store(tmp_path, tiny_packages, ("kk", "ru"), ("ru", "en"), ("kk", "en"))
    assert find_translator("kk", packages_dir=store).route == ["kk", "en"]


def test_translator_cache(tmp_path, tiny_packages, monkeypatch):
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    key = (str(store.resolve()), "kk", "en")
    assert key not in translate._TRANSLATORS
    first = translate_texts(["Барлық адамдар тумысынан азат"], "kk", packages_dir=store)
    hop = translate._TRANSLATORS[key]

    import ctranslate2

    def no_reload(*args, **kwargs):
        raise AssertionError("translator reloaded despite the cache")

    monkeypatch.setattr(ctranslate2, "Translator", no_reload)
    second = translate_texts(["Барлық адамдар тумысынан азат"], "kk", packages_dir=store)
    assert translate._TRANSLATORS[key] is hop
    assert second == first
    monkeypatch.undo()
    # Installing into the store invalidates its cached translators (a new version may replace them).
    install_package(tiny_packages[("kk", "en")], packages_dir=store)
    assert key not in translate._TRANSLATORS


def test_no_argos_settings_no_home_writes(tmp_path, tiny_packages):
    """In a fresh process: argostranslate.settings/sbd are never imported and $HOME stays empty."""
    store = _store(tmp_path, tiny_packages, ("kk", "en"))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ARGOS_"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise SystemExit('network access attempted')\n"
        "socket.socket.connect = refuse\n"
        "from pipeline.stages.translate import translate_texts\n"
        f"out = translate_texts(['Барлық адамдар'], 'kk', packages_dir={str(store)!r})\n"
        "assert isinstance(out[0], str)\n"
        "bad = [m for m in ('argostranslate.settings', 'argostranslate.sbd', 'stanza', 'minisbd') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert list(home.iterdir()) == []
