"""Turn downloaded OPUS-MT/Marian, NLLB-200, M2M100 and MADLAD-400 models into installed Argos packages.

Why: Argos publishes no Kazakh or Uyghur package, but OPUS-MT and NLLB cover them.
We convert such a model once with CTranslate2's own converters and install one
Argos-layout package per source language (metadata.json, model/, sentencepiece.model,
README.md), so `pipeline.stages.translate` routes and drives it like any Argos package.

What the models need on top of Argos's format:
- every family ends the source with `</s>`: we set CTranslate2's `add_source_eos` in
  model/config.json (the OPUS-MT converter does so itself), so Argos 1.11 gets it too;
- NLLB and M2M100 start the source with a language token (`kaz_Cyrl`, `__kk__`): our
  `source_prefix` metadata field (Argos 1.11 has no such field; `pipeline.stages.translate`
  reads it), and force the target language with Argos's own `target_prefix`;
- multilingual-target OPUS-MT models want `>>eng<<` first in the source: `source_prefix`;
- MADLAD-400 (a T5; CTranslate2 conversions of it are published) wants the target's `<2en>` written
  before the source text and tokenized with it (`source_text_prefix`, as its model card does), no
  target prefix: its decoder starts from `<pad>` by its own config.
Nothing here touches the network: paths are local folders only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import config
from pipeline.errors import ModelMissingError
from pipeline.stages.translate import _place_package
from pipeline.store.licence import card_licence

if TYPE_CHECKING:
    from ctranslate2.converters import TransformersConverter

__all__ = ["MT_KINDS", "NLLB_CODES", "detect_mt_kind", "import_translation_model"]

MT_KINDS = ("marian-hf", "marian-native", "nllb", "m2m100", "madlad", "ct2-marian", "ct2-nllb", "ct2-m2m100",
            "ct2-madlad")
ARGOS_VERSION = "1.11"
PACKAGE_VERSION = "1.0"

# ISO 639-1 -> NLLB-200 (FLORES-200) code; also gives the script for OPUS-MT's >>xxx_Scrp<< tokens.
NLLB_CODES = {
    "kk": "kaz_Cyrl", "ug": "uig_Arab", "en": "eng_Latn", "ru": "rus_Cyrl", "uz": "uzn_Latn",
    "tr": "tur_Latn", "zh": "zho_Hans", "ky": "kir_Cyrl", "tg": "tgk_Cyrl", "tk": "tuk_Latn",
    "az": "azj_Latn", "tt": "tat_Cyrl", "ba": "bak_Cyrl", "mn": "khk_Cyrl", "fa": "pes_Arab",
    "ar": "arb_Arab", "ur": "urd_Arab", "uk": "ukr_Cyrl", "de": "deu_Latn", "fr": "fra_Latn",
    "es": "spa_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang",
}
# ISO 639-1 -> ISO 639-3 as OPUS-MT writes target tokens (>>kaz<<, >>eng<<).
_ISO3 = {
    "kk": "kaz", "ug": "uig", "en": "eng", "ru": "rus", "uz": "uzb", "tr": "tur", "zh": "zho",
    "ky": "kir", "tg": "tgk", "tk": "tuk", "az": "aze", "tt": "tat", "ba": "bak", "mn": "mon",
    "fa": "fas", "ar": "ara", "ur": "urd", "uk": "ukr", "de": "deu", "fr": "fra", "es": "spa",
    "ja": "jpn", "ko": "kor",
}
_NAMES = {
    "kk": "Kazakh", "ug": "Uyghur", "en": "English", "ru": "Russian", "uz": "Uzbek", "tr": "Turkish",
    "zh": "Chinese", "ky": "Kyrgyz", "tg": "Tajik", "tk": "Turkmen", "az": "Azerbaijani", "tt": "Tatar",
    "ba": "Bashkir", "mn": "Mongolian", "fa": "Persian", "ar": "Arabic", "ur": "Urdu", "uk": "Ukrainian",
    "de": "German", "fr": "French", "es": "Spanish", "ja": "Japanese", "ko": "Korean",
}
# Used only when neither the caller nor the model card names a licence.
_DEFAULT_LICENCE = {"nllb": "CC-BY-NC-4.0", "m2m100": "MIT", "madlad": "Apache-2.0"}
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_NLLB_TOKEN = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_M2M_TOKEN = re.compile(r"^__[a-z]{2,3}__$")
_MADLAD_TOKEN = re.compile(r"^<2[a-z]{2,3}(_[A-Za-z]+)?>$")  # MADLAD-400 (T5): the target language's token


def detect_mt_kind(path: Path) -> str | None:
    """Which kind of translation model folder `path` is (one of MT_KINDS), or None.

    Reads only small files (config.json, decoder.yml, vocabularies), so the CLI can
    say what it found before a long conversion starts.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / "decoder.yml").is_file():
        return "marian-native"
    if (path / "model.bin").is_file():
        vocab = _ct2_vocabulary(path)
        if any(_NLLB_TOKEN.match(t) for t in vocab):
            return "ct2-nllb"
        if any(_M2M_TOKEN.match(t) for t in vocab):
            return "ct2-m2m100"
        if "<2en>" in vocab and any(_MADLAD_TOKEN.match(t) for t in vocab):
            return "ct2-madlad"
        return "ct2-marian" if vocab else None
    model_type = _read_json(path / "config.json").get("model_type")
    if model_type == "t5":  # MADLAD-400; without its spiece.model the import says that file is missing
        return "madlad"
    if model_type == "marian":
        return "marian-hf"
    if model_type == "m2m_100":
        tokenizer_class = str(_read_json(path / "tokenizer_config.json").get("tokenizer_class", ""))
        if "Nllb" in tokenizer_class:
            return "nllb"
        if "M2M100" in tokenizer_class or (path / "vocab.json").is_file():
            return "m2m100"
        return "nllb"
    return None


def import_translation_model(
    path: Path,
    *,
    from_codes: list[str],
    to_code: str = "en",
    name: str | None = None,
    licence: str | None = None,
    quantization: str | None = "int8",
    packages_dir: Path | None = None,
) -> list[Path]:
    """Convert the model at `path` once and install one package per source language; return their dirs.

    `from_codes`/`to_code` are ISO 639-1 codes (`kk`, `ug`, `en`); NLLB and M2M100
    models get the matching language tokens, and a model that lacks them is refused
    rather than installed to translate the wrong language. `quantization` ("int8" by
    default, as Argos ships; None keeps the weights as they are) applies to conversions,
    not to folders already in CTranslate2 format. Each package appears in the store in
    one rename, replacing an earlier import of the same name.
    """
    path = Path(path).expanduser()
    codes = _source_codes(path, from_codes, to_code)
    kind = _importable_kind(path)
    spm_file = _tokenizer_file(path, kind)
    _check_files(path, kind)

    store = Path(packages_dir if packages_dir is not None else config.argos_dir()).resolve()
    store.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".importing-", dir=store))
    try:
        model_dir = staging / "model"
        _convert(path, kind, model_dir, quantization)
        source_vocab, target_vocab = _ct2_vocabulary(model_dir, split=True)
        built = []
        for code in codes:
            source_prefix, target_prefix = _language_tokens(path, kind, code, to_code, source_vocab, target_vocab)
            meta = _package_metadata(path, kind, code, to_code, name=name, licence=licence)
            prefixes = {"source_prefix": source_prefix, "target_prefix": target_prefix}
            if kind.endswith("madlad"):  # tokenized with the text, as MADLAD's tokenizer does: `▁ <2en> ▁...`
                prefixes = {"source_text_prefix": f"{source_prefix} "}
            meta.update({key: value for key, value in prefixes.items() if value})
            built.append(_build_package(staging / "packages", meta, model_dir, spm_file))
        return [_place_package(pkg, store) for pkg in built]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _source_codes(path: Path, from_codes: list[str] | str, to_code: str) -> list[str]:
    """The source languages, each once, checked: ISO 639 codes, none of them the target."""
    codes = list(dict.fromkeys([from_codes] if isinstance(from_codes, str) else from_codes))
    if not all(re.fullmatch(r"[a-z]{2,3}", c) for c in [*codes, to_code]):
        raise ModelMissingError(f"{path}: language codes must be ISO 639 codes like kk, ug, en; "
                                f"got {[*codes, to_code]}")
    if not codes or any(c == to_code for c in codes):
        raise ModelMissingError(f"{path}: name the source language(s) to import for, other than {to_code!r} "
                                f"(e.g. --language kk)")
    return codes


def _importable_kind(path: Path) -> str:
    """What kind of model folder `path` is, or an error saying what was expected there."""
    if not path.is_dir():
        raise ModelMissingError(f"{path}: no such folder; download the model folder first (a Hugging Face "
                                f"Marian/NLLB/M2M100 folder, an OPUS-MT release or a CTranslate2 folder)")
    kind = detect_mt_kind(path)
    if kind is None:
        raise ModelMissingError(
            f"{path}: not a translation model this importer knows: expected a Hugging Face folder "
            f"(config.json with model_type 'marian' or 'm2m_100'), an OPUS-MT release (decoder.yml, *.npz) "
            f"or a CTranslate2 folder (model.bin + vocabulary)"
        )
    return kind


def _package_metadata(path: Path, kind: str, code: str, to_code: str, *, name: str | None,
                      licence: str | None) -> dict:
    """Argos's metadata.json for one language pair, with where the model came from and its licence."""
    return {
        "package_version": PACKAGE_VERSION,
        "argos_version": ARGOS_VERSION,
        "type": "translate",
        "from_code": code,
        "from_name": _NAMES.get(code, code),
        "to_code": to_code,
        "to_name": _NAMES.get(to_code, to_code),
        "links": [],
        "name": name or path.name,
        "licence": licence or card_licence(path) or _DEFAULT_LICENCE.get(kind.removeprefix("ct2-"), "unknown"),
        "origin": str(path.resolve()),
        "origin_kind": kind,
    }


def _convert(path: Path, kind: str, out: Path, quantization: str | None) -> None:
    """Write a CTranslate2 model for `path` into `out` and make it append `</s>` to every source."""
    try:
        if kind in ("marian-hf", "nllb", "m2m100", "madlad"):
            _transformers_converter(path).convert(str(out), quantization=quantization, force=True)
        elif kind == "marian-native":
            from ctranslate2.converters import OpusMTConverter

            OpusMTConverter(str(path)).convert(str(out), quantization=quantization, force=True)
        else:
            out.mkdir(parents=True)
            for item in path.iterdir():
                if item.name in ("model.bin", "config.json") or "vocabulary" in item.name:
                    shutil.copy2(item, out / item.name)  # a copy: the store never shares an inode with user files
    except (ModelMissingError, KeyboardInterrupt):
        raise
    except Exception as err:  # the converters raise anything from KeyError to OSError on a bad folder
        raise ModelMissingError(
            f"{path}: CTranslate2 could not convert this {kind} model ({type(err).__name__}: {err}); "
            f"check that the folder holds the complete download"
        ) from err
    ct2_config = out / "config.json"
    settings = _read_json(ct2_config)
    settings["add_source_eos"] = True
    ct2_config.write_text(json.dumps(settings, indent=2), encoding="utf-8")


def _transformers_converter(path: Path) -> TransformersConverter:
    """CTranslate2's TransformersConverter, made to see M2M100's language tokens under transformers 5.

    transformers 5's M2M100Tokenizer no longer registers its `__xx__` tokens as added
    tokens, so `get_vocab()` omits them and the converter fails ("vocabulary has size N
    but the model expected N + 100"); we hand it the full vocabulary instead.
    """
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            tokenizer = super().load_tokenizer(tokenizer_class, model_name_or_path, **kwargs)
            languages = getattr(tokenizer, "lang_token_to_id", None) or {}
            vocab = tokenizer.get_vocab()
            if not set(languages) <= set(vocab):
                full = {**vocab, **languages}
                tokenizer.get_vocab = lambda: dict(full)
            return tokenizer

    return Converter(str(path))


def _language_tokens(path: Path, kind: str, code: str, to_code: str,
                     source_vocab: set[str], target_vocab: set[str]) -> tuple[str, str]:
    """(source_prefix, target_prefix) tokens for one language pair; refuse pairs the model lacks."""
    family = kind.removeprefix("ct2-")
    if family == "madlad":  # the source starts with the target's token; `<2kk>` says the model knows kk
        for token in (f"<2{to_code}>", f"<2{code}>"):
            if token not in source_vocab:
                raise ModelMissingError(f"{path}: this MADLAD model has no {token} token, so it does not cover "
                                        f"{_NAMES.get(token[2:-1], token[2:-1])}; import a model that does")
        return f"<2{to_code}>", ""
    if family in ("nllb", "m2m100"):
        pair = []
        for iso, vocab in ((code, source_vocab), (to_code, target_vocab)):
            token = NLLB_CODES.get(iso) if family == "nllb" else f"__{iso}__"
            if token is None:
                raise ModelMissingError(f"{path}: no NLLB language code known for {iso!r}; "
                                        f"known: {', '.join(sorted(NLLB_CODES))}")
            if token not in vocab:
                raise ModelMissingError(f"{path}: this {kind} model has no {token} token, so it does not cover "
                                        f"{_NAMES.get(iso, iso)}; import a model that does")
            pair.append(token)
        return pair[0], pair[1]
    # OPUS-MT: a model with several target languages names them as >>xxx<< tokens.
    targets = sorted(t for t in source_vocab if t.startswith(">>") and t.endswith("<<"))
    if not targets:
        return "", ""
    iso3 = _ISO3.get(to_code, to_code)
    script = NLLB_CODES.get(to_code, "_")[4:]
    for token in (f">>{iso3}<<", f">>{iso3}_{script}<<", f">>{to_code}<<"):
        if token in targets:
            return token, ""
    loose = [t for t in targets if t.startswith(f">>{iso3}_")]
    if loose:
        return loose[0], ""
    raise ModelMissingError(f"{path}: this multilingual OPUS-MT model has no >>{iso3}<< target token, so it "
                            f"cannot translate into {_NAMES.get(to_code, to_code)}; "
                            f"its targets: {', '.join(targets[:20])}")


def _build_package(parent: Path, meta: dict, model_dir: Path, spm_file: Path) -> Path:
    """Lay out one Argos package; the model files are hard links to the shared conversion where possible."""
    final = parent / f"translate-{meta['from_code']}_{meta['to_code']}-{_slug(meta['name'])}"
    (final / "model").mkdir(parents=True)
    for item in model_dir.iterdir():
        _link_or_copy(item, final / "model" / item.name)
    shutil.copy2(spm_file, final / "sentencepiece.model")
    (final / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    noncommercial = "NC" in meta["licence"].upper().replace("-", " ").split()
    lines = [
        f"# {meta['name']}: {meta['from_name']} -> {meta['to_name']}",
        "",
        f"Imported by testimony on {date.today().isoformat()} from `{meta['origin']}` ({meta['origin_kind']}),",
        "converted with CTranslate2.",
        "",
        f"Licence: {meta['licence']}." + (" Non-commercial use only." if noncommercial else ""),
    ]
    (final / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return final


def _tokenizer_file(path: Path, kind: str) -> Path:
    """The SentencePiece model that tokenizes the source (Argos packages carry exactly one)."""
    names = (("source.spm", "sentencepiece.model") if "marian" in kind
             else ("sentencepiece.model", "spiece.model") if "madlad" in kind
             else ("sentencepiece.bpe.model", "sentencepiece.model"))
    for name in names:
        if (path / name).is_file():
            return path / name
    raise ModelMissingError(f"{path}: no {' or '.join(names)} in this {kind} folder; copy the SentencePiece "
                            f"model from the same model download into it")


def _check_files(path: Path, kind: str) -> None:
    """Name the missing file before a conversion fails somewhere deep inside a converter."""
    needed: list[tuple[str, ...]] = []
    if kind in ("marian-hf", "nllb", "m2m100", "madlad"):
        needed.append(_HF_WEIGHTS)
    if kind in ("marian-hf", "m2m100"):
        needed.append(("vocab.json",))
    if kind == "marian-hf" and ((path / "target_vocab.json").is_file()
                                or _read_json(path / "tokenizer_config.json").get("separate_vocabs")):
        raise ModelMissingError(f"{path}: Marian models with separate source and target vocabularies are not "
                                f"supported by CTranslate2's converter; use a model with one shared vocab.json")
    if kind == "marian-native":
        decoder = _read_yaml(path / "decoder.yml")
        needed += [(str(name),) for name in list(decoder.get("models", []))[:1] + list(decoder.get("vocabs", []))]
        if not decoder.get("models") or not decoder.get("vocabs"):
            raise ModelMissingError(f"{path}/decoder.yml: lists no models or vocabs; is this an OPUS-MT release?")
    if kind.startswith("ct2-"):
        needed.append(("config.json",))
    for options in needed:
        if not any((path / name).exists() for name in options):
            raise ModelMissingError(f"{path}: {' or '.join(options)} is missing; this {kind} folder is incomplete, "
                                    f"download the whole model folder again")


def _ct2_vocabulary(model_dir: Path, *, split: bool = False) -> set[str] | tuple[set[str], set[str]]:
    """A CTranslate2 model's tokens (a set), or (source, target) sets when `split`."""
    def load(stem: str) -> list[str] | None:
        for suffix in (".json", ".txt"):
            file = model_dir / f"{stem}{suffix}"
            if file.is_file():
                text = file.read_text(encoding="utf-8")
                return json.loads(text) if suffix == ".json" else text.split("\n")
        return None

    shared = load("shared_vocabulary")
    source = set(shared if shared is not None else load("source_vocabulary") or [])
    target = set(shared if shared is not None else load("target_vocabulary") or [])
    return (source, target) if split else source | target


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(file: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ModelMissingError(f"{file}: unreadable ({err}); download the OPUS-MT release again") from err
    return data if isinstance(data, dict) else {}


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link within the store (no second copy of a multi-GB model.bin), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "imported"
