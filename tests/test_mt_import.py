"""pipeline.store.hf_to_argos on tiny random models in each download format, checked token for token
against transformers.

The proof: import a model, translate UDHR lines with `pipeline.stages.translate.translate_texts`
(greedy, float32), record what reached CTranslate2, and require that the source tokens
are exactly what the model's own Hugging Face tokenizer produces (less the `</s>` that
the package's CTranslate2 config appends) and that every output token equals greedy
`generate()` under the same length cap and minimum length (CTranslate2's default of 1);
for Marian and NLLB our text also equals the HF tokenizer's decode of those tokens.
(M2M100's text is not compared: random weights emit `__xx__` tokens mid-sentence, which
transformers 5 no longer counts as special and Argos's decode turns `_` into spaces.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import config
from pipeline.errors import ModelMissingError
from pipeline.stages import translate
from pipeline.stages.translate import find_translator, translate_texts
from pipeline.store.hf_to_argos import detect_mt_kind, import_translation_model

from .media_factory import SHARED_DATA as UDHR_TSV
from .tiny_models.argos import udhr_column
from .tiny_models.mt import build_m2m, build_marian_hf, marian_native_from_hf

pytestmark = [pytest.mark.skipif(not UDHR_TSV.exists(), reason=f"{UDHR_TSV} not present"),
              pytest.mark.usefixtures("no_network")]

# The shortest lines: the length cap (2 x source tokens + 16) bounds how long looping outputs run.
KK, UG = sorted(udhr_column("kk"), key=len)[:8], sorted(udhr_column("ug"), key=len)[:5]




@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mt-build")


@pytest.fixture(scope="module")
def marian_hf(built) -> Path:
    return build_marian_hf(built / "marian")


@pytest.fixture(scope="module")
def nllb_hf(built) -> Path:
    return build_m2m(built / "nllb", "nllb")


@pytest.fixture(scope="module")
def m2m_hf(built) -> Path:
    return build_m2m(built / "m2m", "m2m100")


@pytest.fixture
def greedy(monkeypatch) -> list[SimpleNamespace]:
    """Our driver decoding greedily in float32, with every CTranslate2 call it makes recorded."""
    import ctranslate2

    monkeypatch.setattr(translate, "BEAM_SIZE", 1)
    monkeypatch.setenv("ARGOS_COMPUTE_TYPE", "float32")
    calls: list[SimpleNamespace] = []
    real = ctranslate2.Translator

    class Recording:
        def __init__(self, *args, **kwargs):
            self.real = real(*args, **kwargs)

        def translate_batch(self, source, target_prefix=None, **kwargs):
            results = self.real.translate_batch(source, target_prefix, **kwargs)
            calls.append(SimpleNamespace(source=source, target_prefix=target_prefix, kwargs=kwargs,
                                         hypotheses=[r.hypotheses[0] for r in results]))
            return results

    monkeypatch.setattr(ctranslate2, "Translator", Recording)
    return calls


def assert_matches_generate(hf_folder: Path, texts: list[str], call, *, src_lang: str | None = None,
                            tgt_lang: str | None = None, ours: list[str] | None = None,
                            marker: str = "") -> list[bool]:
    """Source tokens and greedy output tokens of one recorded call equal transformers'; returns which ended on </s>.

    `src_lang` is the tokenizer's own setting (kaz_Cyrl, kk), `tgt_lang` the forced first
    token (eng_Latn, __en__); `ours`, when given, are our texts, compared with HF's decode;
    `marker` is an OPUS-MT target token (`>>eng<<`) that HF users type before the text.
    """
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(hf_folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_folder)
    extra = {}
    if src_lang:
        tokenizer.src_lang = src_lang
        extra["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(tgt_lang)
    cap = call.kwargs["max_decoding_length"]
    assert call.kwargs["beam_size"] == 1 and len(call.source) == len(texts)
    ended = []
    for i, (text, source, hypothesis) in enumerate(zip(texts, call.source, call.hypotheses)):
        enc = tokenizer(f"{marker} {text}" if marker else text, return_tensors="pt")
        assert source + ["</s>"] == tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
        out = model.generate(**enc, num_beams=1, do_sample=False, max_new_tokens=cap, min_new_tokens=1,
                             forced_eos_token_id=None, **extra)[0].tolist()[1:]  # [1:]: the decoder start token
        finished = out[-1] == model.config.eos_token_id
        out = out[:-1] if finished else out
        assert hypothesis == tokenizer.convert_ids_to_tokens(out)
        if ours is not None:
            assert ours[i] == tokenizer.decode(out[1 if tgt_lang else 0:], skip_special_tokens=True).strip()
        assert finished or len(hypothesis) == cap
        ended.append(finished)
    return ended


def test_detect_kinds(tmp_path, marian_hf, nllb_hf, m2m_hf):
    assert detect_mt_kind(marian_hf) == "marian-hf"
    assert detect_mt_kind(marian_native_from_hf(marian_hf, tmp_path / "native")) == "marian-native"
    assert detect_mt_kind(nllb_hf) == "nllb"
    assert detect_mt_kind(m2m_hf) == "m2m100"
    assert detect_mt_kind(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert detect_mt_kind(tmp_path / "empty") is None
    assert detect_mt_kind(marian_hf / "vocab.json") is None


def test_marian_hf_matches_generate(marian_hf, greedy):
    dirs = import_translation_model(marian_hf, from_codes=["kk", "ug"], quantization=None)
    assert [d.name for d in dirs] == ["translate-kk_en-opus_mt_tiny_trk_en", "translate-ug_en-opus_mt_tiny_trk_en"]
    assert all(d.parent == config.argos_dir().resolve() for d in dirs)
    meta = json.loads((dirs[0] / "metadata.json").read_text())
    assert (meta["from_code"], meta["to_code"], meta["origin_kind"]) == ("kk", "en", "marian-hf")
    assert "source_prefix" not in meta and "target_prefix" not in meta
    assert json.loads((dirs[0] / "model" / "config.json").read_text())["add_source_eos"] is True

    out_kk = translate_texts(KK, "kk")
    out_ug = translate_texts(UG, "ug")
    ended = (assert_matches_generate(marian_hf, KK, greedy[0], ours=out_kk)
             + assert_matches_generate(marian_hf, UG, greedy[1], ours=out_ug))
    assert any(ended) and not all(ended)  # both endings compared: </s> and the length cap
    assert all(isinstance(t, str) for t in out_kk + out_ug) and len(set(out_kk)) > 1


def test_marian_native_release_matches_generate(tmp_path, marian_hf, greedy):
    """An OPUS-MT release made from the same weights converts through OpusMTConverter to the same decoder."""
    native = marian_native_from_hf(marian_hf, tmp_path / "opus-2021-trk-en")
    [pkg] = import_translation_model(native, from_codes=["kk"], quantization=None)
    assert json.loads((pkg / "metadata.json").read_text())["origin_kind"] == "marian-native"
    out = translate_texts(KK, "kk")
    assert any(assert_matches_generate(marian_hf, KK, greedy[0], ours=out))


def test_multilingual_opus_mt_gets_its_target_token(built, greedy):
    """OPUS-MT models with several targets need >>eng<< first in the source: metadata source_prefix."""
    folder = build_marian_hf(built / "marian-mul", targets=("eng", "kaz", "rus"))
    [pkg] = import_translation_model(folder, from_codes=["kk"], quantization=None)
    assert json.loads((pkg / "metadata.json").read_text())["source_prefix"] == ">>eng<<"
    out = translate_texts(KK[:4], "kk")
    assert all(s[0] == ">>eng<<" for s in greedy[0].source)
    assert_matches_generate(folder, KK[:4], greedy[0], ours=out, marker=">>eng<<")
    with pytest.raises(ModelMissingError, match=r"no >>uig<< target token.*>>eng<<, >>kaz<<, >>rus<<"):
        import_translation_model(folder, from_codes=["kk"], to_code="ug")


def test_nllb_matches_generate(nllb_hf, greedy):
    dirs = import_translation_model(nllb_hf, from_codes=["kk", "ug"], quantization=None)
    metas = [json.loads((d / "metadata.json").read_text()) for d in dirs]
    assert [(m["from_code"], m["source_prefix"], m["target_prefix"]) for m in metas] == [
        ("kk", "kaz_Cyrl", "eng_Latn"), ("ug", "uig_Arab", "eng_Latn")]
    assert metas[0]["licence"] == "CC-BY-NC-4.0" and metas[0]["origin"] == str(nllb_hf.resolve())
    assert "Non-commercial use only" in (dirs[0] / "README.md").read_text()
    # One conversion shared by both packages: the weights are one file, hard-linked.
    bins = [(d / "model" / "model.bin").stat() for d in dirs]
    assert bins[0].st_ino == bins[1].st_ino and bins[0].st_nlink == 2

    out = translate_texts(KK, "kk")
    out_ug = translate_texts(UG, "ug")
    assert greedy[0].target_prefix == [["eng_Latn"]] * len(KK)
    assert all(s[0] == "kaz_Cyrl" for s in greedy[0].source)
    ended = (assert_matches_generate(nllb_hf, KK, greedy[0], src_lang="kaz_Cyrl", tgt_lang="eng_Latn", ours=out)
             + assert_matches_generate(nllb_hf, UG, greedy[1], src_lang="uig_Arab", tgt_lang="eng_Latn", ours=out_ug))
    assert any(ended) and not all(ended)
    assert not any("eng_Latn" in t or "eng Latn" in t for t in out)  # the target prefix is kept out of the text


def test_ct2_nllb_folder_matches_generate(tmp_path, nllb_hf, greedy):
    """A folder already converted with ct2-transformers-converter imports without converting again."""
    from ctranslate2.converters import TransformersConverter

    ct2 = tmp_path / "nllb-tiny-ct2"
    TransformersConverter(str(nllb_hf), copy_files=["sentencepiece.bpe.model"]).convert(str(ct2))
    assert json.loads((ct2 / "config.json").read_text())["add_source_eos"] is False  # as the converter leaves it
    assert detect_mt_kind(ct2) == "ct2-nllb"
    [pkg] = import_translation_model(ct2, from_codes=["ug"])
    assert json.loads((pkg / "metadata.json").read_text())["licence"] == "CC-BY-NC-4.0"
    assert (pkg / "model" / "model.bin").stat().st_ino != (ct2 / "model.bin").stat().st_ino  # a copy, never a link
    translate_texts(UG, "ug")
    assert_matches_generate(nllb_hf, UG, greedy[0], src_lang="uig_Arab", tgt_lang="eng_Latn")


def test_m2m100_matches_generate(m2m_hf, greedy):
    [pkg] = import_translation_model(m2m_hf, from_codes=["kk"], quantization=None)
    meta = json.loads((pkg / "metadata.json").read_text())
    assert (meta["source_prefix"], meta["target_prefix"], meta["licence"]) == ("__kk__", "__en__", "MIT")
    translate_texts(KK, "kk")
    assert any(assert_matches_generate(m2m_hf, KK, greedy[0], src_lang="kk", tgt_lang="__en__"))
    with pytest.raises(ModelMissingError, match="no __ug__ token"):  # M2M100 has no Uyghur
        import_translation_model(m2m_hf, from_codes=["ug"])


def test_default_int8_reimport_and_routing(marian_hf, monkeypatch):
    [full] = import_translation_model(marian_hf, from_codes=["kk"], quantization=None, name="full")
    [small] = import_translation_model(marian_hf, from_codes=["kk"], name="OPUS-MT trk-en", licence="CC-BY-4.0")
    assert small.name == "translate-kk_en-opus_mt_trk_en"
    assert (small / "model" / "model.bin").stat().st_size < 0.6 * (full / "model" / "model.bin").stat().st_size
    meta = json.loads((small / "metadata.json").read_text())
    assert (meta["name"], meta["licence"]) == ("OPUS-MT trk-en", "CC-BY-4.0")
    shutil.rmtree(full)
    out = translate_texts(KK[:3], "kk")  # Argos's defaults: beam 4, compute type auto
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    info = find_translator("kk")
    assert info.route == ["kk", "en"] and info.packages[0]["name"] == small.name
    # Importing again replaces the package in one rename and drops the cached translator.
    import_translation_model(marian_hf, from_codes=["kk"], name="OPUS-MT trk-en")
    assert not [k for k in translate._TRANSLATORS if k[0] == str(config.argos_dir().resolve())]
    assert sorted(p.name for p in config.argos_dir().iterdir()) == [small.name]


def test_errors_name_the_folder_and_install_nothing(tmp_path, nllb_hf, marian_hf):
    store = config.argos_dir()
    with pytest.raises(ModelMissingError, match="no such folder"):
        import_translation_model(tmp_path / "nowhere", from_codes=["kk"])
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(ModelMissingError, match=r"junk: not a translation model"):
        import_translation_model(tmp_path / "junk", from_codes=["kk"])
    no_spm = shutil.copytree(nllb_hf, tmp_path / "nllb-no-spm")
    (no_spm / "sentencepiece.bpe.model").unlink()
    with pytest.raises(ModelMissingError, match=r"nllb-no-spm: no sentencepiece.bpe.model"):
        import_translation_model(no_spm, from_codes=["kk"])
    with pytest.raises(ModelMissingError, match=r"nllb-tiny: this nllb model has no tur_Latn token"):
        import_translation_model(nllb_hf, from_codes=["kk", "tr"])  # kk converts fine, but nothing installs
    with pytest.raises(ModelMissingError, match="other than 'en'"):
        import_translation_model(marian_hf, from_codes=["en"])
    with pytest.raises(ModelMissingError, match="ISO 639"):
        import_translation_model(marian_hf, from_codes=["../kk"])
    broken = shutil.copytree(marian_hf, tmp_path / "marian-broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelMissingError, match=r"marian-broken: CTranslate2 could not convert"):
        import_translation_model(broken, from_codes=["kk"])
    assert not store.exists() or list(store.iterdir()) == []  # no package, no staging left behind

