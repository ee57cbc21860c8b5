"""Offline translation of transcript segments with installed Argos Translate packages.

Why not `argostranslate.translate.translate()`: importing `argostranslate.settings`
creates directories under the user's home and reads `~/.config/argos-translate`,
and every `PackageTranslation` gets a sentence splitter (MiniSBD by default) that
downloads its model on first use. Whisper segments are already sentence-sized,
so we read the package directory ourselves and drive each package's own
CTranslate2 model with Argos's tokenizer classes (`argostranslate.tokenizer`,
which imports nothing but SentencePiece). No Argos index, no SBD, no network.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pipeline import config
from pipeline.errors import ModelMissingError
from pipeline.stages import spellings
from pipeline.store import registry as model_registry

__all__ = ["TranslatorInfo", "MissingTranslation", "find_translator", "translate_texts", "translate_keeping",
           "install_package"]

BEAM_SIZE = 4  # Argos's default
MAX_BATCH = 32
# Output cap relative to the longest input (tokens): a guard against models that
# never emit </s> (random weights in tests, degenerate real models on noise).
LENGTH_RATIO = 2.0
LENGTH_SLACK = 16
LENGTH_CEILING = 512


@dataclass(frozen=True)
class TranslatorInfo:
    """Which installed packages translate `from_code` to `to_code`, recorded for provenance."""

    from_code: str
    to_code: str
    route: list[str]  # ["kk", "en"] direct, ["kk", "ru", "en"] via a pivot
    packages: list[dict] = field(default_factory=list)  # name (directory in the store)/version/from/to per hop


class MissingTranslation(ModelMissingError):
    """No installed package (or chain of packages) covers the requested pair."""


@dataclass
class _Hop:
    """One loaded package: its CTranslate2 translator plus Argos's tokenizer for it."""

    path: Path
    translator: Any  # ctranslate2.Translator
    tokenizer: Any  # argostranslate.tokenizer.Tokenizer
    target_prefix: str
    source_prefix: str = ""  # our metadata addition: a language token the encoder needs first (NLLB, M2M100)
    text_prefix: str = ""  # ours too: text tokenized before the source (MADLAD's "<2en> ")


# (packages_dir, from_code, to_code) -> loaded package, so many videos share one model load.
_TRANSLATORS: dict[tuple[str, str, str], _Hop] = {}
_LOCK = threading.Lock()


def _store(packages_dir: Path | None) -> Path:
    return Path(packages_dir if packages_dir is not None else config.argos_dir()).resolve()


def _installed(store: Path) -> list[tuple[Path, dict]]:
    """(package dir, metadata) of every translate package in `store`, newest version first."""
    found = []
    if store.is_dir():
        for path in sorted(store.iterdir()):
            meta_file = path / "metadata.json"
            if not meta_file.is_file():
                continue
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if meta.get("type", "translate") == "translate" and meta.get("from_code") and meta.get("to_code"):
                found.append((path, meta))
    found.sort(key=lambda item: _version_key(item[1].get("package_version", "")), reverse=True)
    return found


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in str(version).replace("-", ".").split("."))


def _model_names(path: Path, meta: dict) -> set[str]:
    """The names a route may give a package by: its folder, its model's name, the manifest name it came as."""
    return {path.name, meta.get("name", ""), (model_registry.read_record(path) or {}).get("model", "")} - {""}


def _missing_model(model: str, from_code: str, to_code: str, store: Path) -> MissingTranslation:
    """The route names a translation model the store lacks: say which command brings it."""
    fix = (f"`testimony models install {model} --language {from_code}`" if model in model_registry.known_models()
           else f"`testimony models import FOLDER --name {model} --language {from_code}`")
    return MissingTranslation(f"the route for {from_code} names the translation model {model!r}, which is not "
                              f"installed for {from_code} -> {to_code} in {store}: {fix}")


def find_translator(from_code: str, to_code: str = "en", *, packages_dir: Path | None = None,
                    via: str | None = None, model: str | None = None) -> TranslatorInfo:
    """The shortest chain of installed packages from `from_code` to `to_code` (direct beats pivot).

    `via` (a language route's `translate_via`) pins the pivot: from -> via -> to, nothing else;
    `model` (a route's `translate`) pins the model into `to_code`: only its package makes that hop.
    """
    store = _store(packages_dir)
    if from_code == to_code:
        return TranslatorInfo(from_code, to_code, [from_code], [])
    edges: dict[str, dict[str, tuple[Path, dict]]] = {}
    for path, meta in _installed(store):
        if model and meta["to_code"] == to_code and model not in _model_names(path, meta):
            continue
        edges.setdefault(meta["from_code"], {}).setdefault(meta["to_code"], (path, meta))
    if via:
        edges = {a: {b: hop for b, hop in nbrs.items() if (a, b) in ((from_code, via), (via, to_code))}
                 for a, nbrs in edges.items()}

    # Breadth-first over language codes; sorted neighbours keep the choice deterministic.
    previous: dict[str, str] = {from_code: ""}
    queue = deque([from_code])
    while queue and to_code not in previous:
        code = queue.popleft()
        for nxt in sorted(edges.get(code, {})):
            if nxt not in previous:
                previous[nxt] = code
                queue.append(nxt)
    if to_code not in previous and model:
        raise _missing_model(model, from_code, to_code, store)
    if to_code not in previous:
        pairs = ", ".join(f"{a} -> {b}" for a in sorted(edges) for b in sorted(edges[a])) or "none"
        raise MissingTranslation(
            f"no Argos package for {from_code} -> {to_code} installed in {store} "
            f"(installed: {pairs}); import one with `testimony models import PATH`"
        )
    route = [to_code]
    while route[-1] != from_code:
        route.append(previous[route[-1]])
    route.reverse()
    hops = [edges[a][b] for a, b in zip(route, route[1:])]
    packages = [
        {"name": path.name, "version": meta.get("package_version", ""), "from": meta["from_code"],
         "to": meta["to_code"], **({"sha256": digest} if (digest := _model_sha256(path)) else {})}
        for path, meta in hops
    ]
    return TranslatorInfo(from_code, to_code, route, packages)


def _model_sha256(path: Path) -> str | None:
    """The SHA-256 of the package's CTranslate2 weights as recorded at install (checked before each load);
    None for a package placed in the store by hand, which has no record (its provenance names it only)."""
    return ((model_registry.read_record(path) or {}).get("files") or {}).get("model/model.bin")


def _load(store: Path, from_code: str, to_code: str, path: Path) -> _Hop:
    """The cached translator for one package, loading it on first use."""
    key = (str(store), from_code, to_code)
    with _LOCK:
        hop = _TRANSLATORS.get(key)
        if hop is not None and hop.path == path:
            return hop
        import ctranslate2
        from argostranslate.tokenizer import BPETokenizer, SentencePieceTokenizer

        record = model_registry.read_record(path) or {}
        if record.get("files"):  # packages installed through the registry carry their files' hashes
            model_registry.check_before_load(path, record["files"], path.name)
        meta = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
        if (path / "sentencepiece.model").is_file():
            tokenizer = SentencePieceTokenizer(path / "sentencepiece.model")
        elif (path / "bpe.model").is_file():
            tokenizer = BPETokenizer(path / "bpe.model", from_code, to_code)
        else:
            raise MissingTranslation(f"{path}: Argos package has no sentencepiece.model or bpe.model; reinstall it")
        translator = ctranslate2.Translator(
            str(path / "model"),
            device=os.environ.get("ARGOS_DEVICE_TYPE", "cpu"),
            compute_type=os.environ.get("ARGOS_COMPUTE_TYPE", "auto"),
        )
        hop = _Hop(path, translator, tokenizer, meta.get("target_prefix", "") or "",
                   meta.get("source_prefix", "") or "", meta.get("source_text_prefix", "") or "")
        _TRANSLATORS[key] = hop
        return hop


def _translate_hop(hop: _Hop, texts: list[str], needed: list[list[tuple[str, str]]] | None = None,
                   ) -> tuple[list[str], list[list[dict[str, str]]]]:
    """One batched CTranslate2 call, no sentence splitting; keeps order, empty -> "". `needed` (per text,
    the glossary's (name, English spelling) pairs its original says) are kept in the English
    (`spellings.keep`); the second list says how, per text."""
    todo = [i for i, text in enumerate(texts) if text.strip()]
    out: list[str] = [""] * len(texts)
    notes: list[list[dict[str, str]]] = [[] for _ in texts]
    if not todo:
        return out, notes
    tokens = [hop.tokenizer.encode(hop.text_prefix + texts[i].strip()) for i in todo]
    if hop.source_prefix:
        tokens = [[hop.source_prefix, *t] for t in tokens]
    longest = max(len(t) for t in tokens)
    prefix = [[hop.target_prefix] for _ in tokens] if hop.target_prefix else None
    options = {"max_batch_size": MAX_BATCH, "beam_size": BEAM_SIZE, "num_hypotheses": 1, "length_penalty": 0.2,
               "replace_unknowns": True,
               "max_decoding_length": min(LENGTH_CEILING, int(LENGTH_RATIO * longest) + LENGTH_SLACK)}
    results = hop.translator.translate_batch(tokens, target_prefix=prefix, **options)
    for i, source, result in zip(todo, tokens, results):
        hypothesis = result.hypotheses[0]
        # Drop the prefix token before decoding: Argos's decode turns "_" into " ",
        # so a prefix like "eng_Latn" no longer matches as a string afterwards.
        if hop.target_prefix and hypothesis[:1] == [hop.target_prefix]:
            hypothesis = hypothesis[1:]
        value = hop.tokenizer.decode(hypothesis)
        if hop.target_prefix and value.startswith(hop.target_prefix):
            value = value[len(hop.target_prefix):]
        out[i] = value.strip()
        if needed and needed[i]:
            out[i], notes[i] = spellings.keep(hop, source, hypothesis, out[i], needed[i], options)
    return out, notes


def translate_texts(
    texts: Sequence[str], from_code: str, to_code: str = "en", *, packages_dir: Path | None = None,
    via: str | None = None, model: str | None = None,
) -> list[str]:
    """Translate each text as one unit (one Whisper segment), through a pivot if needed."""
    return translate_keeping(texts, from_code, to_code, packages_dir=packages_dir, via=via, model=model)[0]


def translate_keeping(
    texts: Sequence[str], from_code: str, to_code: str = "en", *, english: dict[str, str] | None = None,
    packages_dir: Path | None = None, via: str | None = None, model: str | None = None,
) -> tuple[list[str], list[list[dict[str, str]]]]:
    """`translate_texts`, keeping the glossary's English spellings (`english`: name -> spelling) of the names
    each original says in the last hop's output; also, per text, how each was kept (`spellings.keep`)."""
    texts = [t or "" for t in texts]
    needed = spellings.required(texts, english) if english else None
    info = find_translator(from_code, to_code, packages_dir=packages_dir, via=via, model=model)
    store = _store(packages_dir)
    notes: list[list[dict[str, str]]] = [[] for _ in texts]
    for n, pkg in enumerate(info.packages):
        last = n == len(info.packages) - 1
        texts, notes = _translate_hop(_load(store, pkg["from"], pkg["to"], store / pkg["name"]), texts,
                                      needed if last else None)
    return texts, notes


def install_package(path: Path, *, packages_dir: Path | None = None) -> None:
    """Install a `.argosmodel` zip into the store without Argos's settings or network.

    The archive must hold one top-level directory with `metadata.json`; it is
    extracted beside the store's packages and renamed into place, so a failed
    extraction never leaves a half-installed package that `find_translator` would see.
    """
    path = Path(path)
    store = _store(packages_dir)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an Argos package (expected a .argosmodel zip archive)")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.strip("/")]
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any(n.startswith("/") or ".." in Path(n).parts for n in names):
            raise ValueError(f"{path}: an Argos package must contain exactly one top-level directory")
        top = tops.pop()
        if f"{top}/metadata.json" not in names:
            raise ValueError(f"{path}: no {top}/metadata.json; not an Argos package")
        store.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=store))
        try:
            zf.extractall(staging)
            _place_package(staging / top, store)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _place_package(built: Path, store: Path) -> Path:
    """Rename a complete package directory into `store` as one step and forget the store's loaded translators.

    `built` must lie on the store's file system (a staging directory inside it), so
    the rename is atomic; a package of the same name is moved aside beside `built`
    first, and the caller removes its staging directory afterwards.
    """
    target = store / built.name
    if target.exists():
        target.rename(built.parent / f".replaced-{built.name}")
    built.rename(target)
    with _LOCK:
        for key in [k for k in _TRANSLATORS if k[0] == str(store)]:
            del _TRANSLATORS[key]
    return target
