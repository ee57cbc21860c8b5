"""`testimony models import PATH`: recognise a model by its contents, bring it into the store, route it.

Accepted, all offline:
- an openai-whisper checkpoint (`.pt` holding `dims` and `model_state_dict`), copied;
- a CTranslate2 (faster-whisper) Whisper folder, converted losslessly to an openai-whisper checkpoint;
- a Hugging Face transformers Whisper folder, converted likewise (the form fine-tunes are published in);
- an Argos package (`.argosmodel`), installed;
- a Marian / OPUS-MT, NLLB-200 / M2M100 or MADLAD-400 translation model (a Hugging Face folder, or a
  CTranslate2 conversion), converted into one Argos package per source language named with `--language`;
- a CTC export folder (Omnilingual ASR CTC from sherpa-onnx, GigaAM; a `.onnx` model and `tokens.txt`),
  checked and copied (`ctc_store`); its route names the `ctc` engine.
An ASR model imported with `--language XX` becomes the route for XX; so does a MADLAD-400 model, as XX's
`translate` (other translation models leave the choice to the installed chain).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import config
from pipeline.errors import ModelMissingError
from pipeline.store import registry as model_registry
from pipeline.store import routes


@dataclass(frozen=True)
class Imported:
    name: str
    kind: str  # "whisper", "argos" or "ctc"
    path: Path
    note: str  # one line for the user: what was done


def detect_kind(path: Path) -> str:
    """What `path` holds, judged by its contents rather than its name."""
    if path.is_file():
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if any(n.rstrip("/").count("/") == 1 and n.endswith("/metadata.json") for n in zf.namelist()):
                    return "argos"
                if any(n.endswith("data.pkl") for n in zf.namelist()):
                    return "whisper-pt"  # torch.save writes a zip with a pickled dict
        raise ModelMissingError(f"{path} is neither an Argos package nor an openai-whisper checkpoint")
    if not path.is_dir():
        raise ModelMissingError(f"{path} does not exist")
    from pipeline.store.ctc_store import is_ctc_folder

    if is_ctc_folder(path):
        return "ctc"
    config_json = _json(path / "config.json")
    if (path / "model.bin").is_file() and ("suppress_ids" in config_json or "lang_ids" in config_json):
        return "ct2-whisper"
    if config_json.get("model_type") == "whisper":
        return "hf-whisper"
    from pipeline.store.hf_to_argos import detect_mt_kind

    if detect_mt_kind(path):
        return "translation"
    raise ModelMissingError(
        f"{path}: not a model this store knows (looked for a CTranslate2 or Hugging Face Whisper folder, "
        "a Marian/OPUS-MT, NLLB-200, M2M100 or MADLAD-400 folder, a CTC export with tokens.txt). Point at the folder "
        "that holds config.json (or tokens.txt).")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def import_model(path: Path, *, languages: list[str] | None = None, whisper_token: str | None = None,
                 name: str | None = None, licence: str | None = None) -> list[Imported]:
    """Import whatever `path` holds; see the module docstring for the forms."""
    path = Path(path).expanduser()
    _check_name(name or path.name, path)
    languages = languages or []
    kind = detect_kind(path)
    if kind == "argos":
        return [_import_argos(path, licence)]
    if kind == "translation":
        return _import_translation(path, languages, name, licence)
    if kind == "ctc":
        return [_import_ctc(path, languages, name, licence)]
    return [_import_whisper(path, kind, languages, whisper_token, name, licence)]


def _check_name(name: str, path: Path) -> None:
    """A model's store name becomes a folder or file name in the store: never a path, never `.` or `..`
    (an import replaces what the store holds under that name)."""
    if name.strip(".") == "" or "/" in name or "\\" in name or os.sep in name:
        raise ModelMissingError(f"{path}: {name!r} cannot name a model in the store: give --name with letters, "
                                "digits, '.', '_' or '-'")


def _import_whisper(path: Path, kind: str, languages: list[str], token: str | None, name: str | None,
                    licence: str | None) -> Imported:
    from whisper.tokenizer import LANGUAGES

    for language in languages:
        if language not in LANGUAGES and not token:
            raise ModelMissingError(
                f"Whisper has no '{language}' token: say which token this model was fine-tuned over, "
                f"e.g. `testimony models import {path} --language {language} --whisper-token uz`")
    name = name or path.stem.removesuffix(".pt") or path.name
    store = config.whisper_dir()
    store.mkdir(parents=True, exist_ok=True)
    target = store / f"{name}.pt"
    staging = store / f".importing-{os.getpid()}-{name}.pt"
    try:
        if kind == "whisper-pt":
            _check_checkpoint(path)
            shutil.copyfile(path, staging)
            origin = f"openai-whisper checkpoint {path}"
        elif kind == "ct2-whisper":
            _convert_ct2(path, staging)
            origin = f"CTranslate2 Whisper folder {path}, converted losslessly"
        else:
            from pipeline.store.hf_to_openai import convert_hf_whisper

            convert_hf_whisper(path, staging)
            origin = f"Hugging Face Whisper folder {path}, converted"
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    licence = licence or _declared_licence(path)
    model_registry.write_record(target, name=name, origin=origin, licence=licence or "unknown: check the source",
                                languages=languages, whisper_token=token or "")
    from pipeline.store.whisper_store import forget_loaded

    forget_loaded(target)
    for language in languages:
        routes.set_route(language, asr_model=name, whisper_token=token or language, engine="")
    routed = f"; route {', '.join(languages)} -> {name}" + (f" (decoding with '{token}')" if token else "") \
        if languages else ""
    return Imported(name, "whisper", target, f"imported {path.name} as Whisper model '{name}'{routed}")


def _import_ctc(path: Path, languages: list[str], name: str | None, licence: str | None) -> Imported:
    """A CTC export: checked (format, vocabulary against the output), copied, recorded, routed."""
    from pipeline.store.ctc_store import import_ctc

    name = name or path.name
    target = import_ctc(path, name, f"CTC export folder {path}",
                        licence or _declared_licence(path) or "unknown: check the source", languages)
    for language in languages:
        routes.set_route(language, asr_model=name, engine="ctc", whisper_token="")
    routed = f"; route {', '.join(languages)} -> {name} (engine ctc)" if languages else ""
    return Imported(name, "ctc", target, f"imported {path.name} as CTC model '{name}'{routed}")


def _declared_licence(path: Path) -> str:
    """The `license:` line of a Hugging Face model card, where the folder has one."""
    card = path / "README.md" if path.is_dir() else None
    if card and card.is_file():
        for line in card.read_text(encoding="utf-8", errors="replace").splitlines()[:40]:
            if line.lower().startswith("license:"):
                return line.split(":", 1)[1].strip()
    return ""


def _check_checkpoint(path: Path) -> None:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise ModelMissingError(f"{path} could not be read as a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise ModelMissingError(f"{path} is not an openai-whisper checkpoint (no dims/model_state_dict)")


def _convert_ct2(folder: Path, target: Path) -> None:
    from pipeline.store.ct2_to_openai import convert_ct2_whisper, encode_alignment_heads, read_ct2_model

    variables, meta = read_ct2_model(folder / "model.bin")
    heads = _json(folder / "config.json").get("alignment_heads") or meta.get("config", {}).get("alignment_heads")
    encoded = None
    if heads:  # keep word timestamps as good as the source's
        n_layers = len({m.group(1) for k in variables if (m := re.match(r"decoder/layer_(\d+)/", k))})
        encoded = encode_alignment_heads(heads, n_layers, int(meta["attributes"]["decoder/num_heads"]))
    convert_ct2_whisper(folder / "model.bin", target, alignment_heads=encoded)


def _import_argos(path: Path, licence: str | None) -> Imported:
    from pipeline.stages.translate import install_package

    with zipfile.ZipFile(path) as zf:
        top = next(n.split("/", 1)[0] for n in zf.namelist() if n.strip("/"))
    install_package(path)
    installed = config.argos_dir() / top
    meta = _json(installed / "metadata.json")
    model_registry.write_record(installed, name=top, origin=f"Argos package {path}",
                                licence=(licence or (meta.get("licence") or meta.get("license", ""))
                                         or "see the package README"),
                                languages=[meta.get("from_code", "")])
    return Imported(top, "argos", installed,
                    f"installed Argos package {path.name} ({meta.get('from_code')} -> {meta.get('to_code')})")


def _import_translation(path: Path, languages: list[str], name: str | None, licence: str | None) -> list[Imported]:
    from pipeline.store.hf_to_argos import import_translation_model

    if not languages:
        raise ModelMissingError(
            f"{path} is a multilingual translation model: name the source language(s) to install, e.g. "
            f"`testimony models import {path} --language kk --language ug`")
    done = []
    for package in import_translation_model(path, from_codes=languages, to_code="en", name=name, licence=licence):
        meta = _json(package / "metadata.json")
        model_registry.write_record(package, name=package.name, origin=f"converted from {path}",
                                    licence=((meta.get("licence") or meta.get("license")) or licence
                                             or "unknown: check the source"),
                                    languages=[meta.get("from_code", "")], model=meta.get("name", ""))
        done.append(Imported(package.name, "argos", package,
                             f"built Argos package {package.name} ({meta.get('from_code')} -> en) from {path.name}"
                             + _route_translation(meta)))
    return done


def _route_translation(meta: dict) -> str:
    """A MADLAD import becomes its languages' translation route (`translate`, by the model's name), as an
    ASR import becomes their ASR route: one would not bring 3 GB of MADLAD in to have another package chosen.
    Other translation models leave the route to any installed chain, as before."""
    if not str(meta.get("origin_kind", "")).endswith("madlad"):
        return ""
    routes.set_route(meta["from_code"], translate=meta["name"])
    return f"; route {meta['from_code']} translates with {meta['name']}"
