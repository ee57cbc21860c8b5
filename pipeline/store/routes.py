"""Per-language routes: which ASR model and Whisper token decode a language, and how it reaches English.

Defaults ship with the package (`pipeline/store/defaults/routes.toml`); what a user imports with `--language` is
written to `routes.local.toml` in the model store and wins field by field. A language without a route of its own
falls back to the `auto` model with its own Whisper token, which is right for every language Whisper
knows; a language Whisper does not know (Uyghur) must have a model imported for it. Given an archive,
its own routes (`<archive>/.models/routes.toml`, to the models adapted on its witnesses) win over both:
they are read for that archive only (`store.archive_models`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic, config
from pipeline.errors import ModelMissingError
from pipeline.store import toml

DEFAULTS_FILE = config.DEFAULTS / "routes.toml"
FIELDS = ("name", "asr_model", "whisper_token", "translate_via", "script", "engine", "translate")


@dataclass(frozen=True)
class Route:
    language: str
    name: str = ""
    asr_model: str = ""  # empty: no model can do this language yet
    whisper_token: str = ""
    translate_via: str = ""  # pivot language for English, empty for any installed chain
    script: str = ""
    engine: str = ""  # the ASR engine the model needs ("ctc"); empty: the run's engine (Whisper's)
    translate: str = ""  # the translation model into English (e.g. madlad400-3b-mt); empty: any installed chain


def local_file() -> Path:
    """Where imports record their routes: beside the weights, so a copied store keeps its routes."""
    return config.models_dir() / "routes.local.toml"


def _read(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        return toml.loads(path.read_text(encoding="utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelMissingError(f"route file {path} is not valid TOML ({exc}); fix or delete it") from None


def _machine() -> dict[str, dict]:
    """The store's local routes, less any to a model adapted on an archive's witnesses (an older testimony
    routed those here): such a route is ignored, with a warning naming what to remove."""
    from pipeline.store import archive_models

    tables = _read(local_file())
    for language, table in tables.items():
        if not isinstance(table, dict) or not table.get("asr_model"):
            continue
        entry = config.whisper_dir() / f"{table['asr_model']}.pt"
        if archive_models.points_into_an_archive(entry):
            archive_models.warn_once(local_file(), f"{local_file()} routes {language} to {table['asr_model']}, "
                                     "a model adapted on an archive's witnesses, for every archive on this machine; "
                                     f"ignored: remove its [{json.dumps(language)}] asr_model line and {entry}")
            for key in ("asr_model", "whisper_token", "engine"):
                table.pop(key, None)
    return tables


def _archive(archive: str | Path) -> dict[str, dict]:
    """The archive's own routes, each model named by its file under the archive's `.models/` (so a run,
    and `verify --reproduce` after it, load exactly those weights without the store knowing them)."""
    from pipeline.store import archive_models

    path = archive_models.routes_file(archive)
    tables = _read(path)
    for language, table in tables.items():
        name = table.get("asr_model") if isinstance(table, dict) else None
        if name:
            weights = archive_models.model_path(archive, name)
            if not weights.is_file():
                raise ModelMissingError(f"{path} routes {language} to {name}, but {weights} is missing: restore it "
                                        f"from the archive's backup, or remove the [{json.dumps(language)}] table")
            table["asr_model"] = str(weights.resolve())
    return tables


def load_routes(archive: str | Path | None = None) -> dict[str, Route]:
    """Every configured route: defaults, overlaid by the store's local file, then by `archive`'s own."""
    merged: dict[str, dict] = {}
    for source in (_read(DEFAULTS_FILE), _machine(), _archive(archive) if archive is not None else {}):
        for language, table in source.items():
            if isinstance(table, dict):
                merged.setdefault(language, {}).update({k: str(v) for k, v in table.items() if k in FIELDS})
    return {language: Route(language, **fields) for language, fields in merged.items()}


def route_for(language: str, archive: str | Path | None = None) -> Route:
    """The route for `language` (for `archive`, when given); one Whisper knows gets the `auto` model and its
    own token."""
    routes = load_routes(archive)
    if language in routes:
        return routes[language]
    from pipeline.asr.languages import languages

    auto = routes.get("auto", Route("auto", asr_model="base"))
    if language in languages():
        return Route(language, languages()[language].title(), auto.asr_model, language)
    return Route(language)


def set_route(language: str, **fields: str) -> Route:
    """Record `fields` for `language` in the store's local route file (atomically)."""
    _update(local_file(), language, fields)
    return route_for(language)


def set_archive_route(archive: str | Path, language: str, **fields: str) -> Route:
    """Route `language` for `archive` only (its `.models/routes.toml`): a model adapted on its witnesses."""
    from pipeline.store import archive_models

    _update(archive_models.routes_file(archive), language, fields,
            "# Written by `testimony adapt`: routes to models adapted on this archive's witnesses, for it only.")
    return route_for(language, archive)


def _update(path: Path, language: str, fields: dict[str, str], header: str = "") -> None:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown route fields: {', '.join(sorted(unknown))}")
    tables = _read(path)
    tables.setdefault(language, {}).update({k: v for k, v in fields.items() if v is not None})
    for field in ("engine", "translate"):  # a Whisper model routed again: the run's engine; no pin: any chain
        if tables[language].get(field) == "":
            del tables[language][field]
    _write(path, tables, header)


def _write(path: Path, tables: dict[str, dict], header: str = "") -> None:
    lines = [header or "# Written by `testimony models import`; overrides the shipped routes.toml field by field.",
             ""]
    for lang in sorted(tables):
        lines.append(f"[{json.dumps(lang)}]")  # a quoted key is valid TOML for any code
        lines += [f"{key} = {json.dumps(str(value), ensure_ascii=False)}" for key, value in tables[lang].items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, "\n".join(lines))


def drop_model(name: str) -> list[str]:
    """Forget local routes that point at a removed model; returns the languages affected."""
    path = local_file()
    tables = _read(path)
    affected = [lang for lang, table in tables.items() if table.get("asr_model") == name]
    if affected:
        for lang in affected:
            tables[lang].pop("asr_model", None)
            tables[lang].pop("whisper_token", None)
            tables[lang].pop("engine", None)
        _write(path, tables)
    return affected


def import_hint(language: str) -> str:
    return (f"testimony models import PATH/TO/MODEL --language {language}"
            + (" --whisper-token uz (a Whisper fine-tune; a CTC export folder needs no token)"
               if language == "ug" else ""))


def resolve_asr(language: str, asr_model: str | None, whisper_token: str | None,
                archive: str | Path | None = None) -> tuple[str, str | None]:
    """The (model, token) a run uses: what the user named, else the language's route.

    Never falls back to a model that cannot do the language: a route with no model is an error that
    names the language, what the route wants and the command that fixes it.
    """
    if language == "auto":
        return asr_model or route_for("auto", archive).asr_model or "base", whisper_token
    route = route_for(language, archive)
    token = whisper_token or route.whisper_token or None
    model = asr_model or route.asr_model
    if not model:
        label = f"{route.name} ({language})" if route.name else language
        raise ModelMissingError(
            f"no ASR model is set up for {label}: Whisper has no '{language}' token, so the route wants "
            f"a model fine-tuned for {route.name or language}. Import one with `{import_hint(language)}`, "
            "or name one with --asr-model and --whisper-token.")
    return model, token


def resolve_run(language: str, asr_model: str | None, whisper_token: str | None,
                engine: str | None, archive: str | Path | None = None) -> tuple[str, str | None, str]:
    """(model, token, engine) of a run: what the user named wins, else the language's route.

    A named model brings its own engine (a CTC export runs on `ctc`); a named engine that cannot run
    the route's model falls back to Whisper's `auto` model (a Whisper engine) or asks for a CTC model.
    `--engine ctc` with no language has no model ("") until a folder or sidecar gives the language:
    a CTC model cannot detect it, and the run says so (`asr.ctc_engine.NO_DETECTION`).
    """
    if asr_model:
        return asr_model, whisper_token, engine or ("ctc" if _is_ctc(asr_model) else "whisper")
    if engine == "ctc" and language == "auto":  # no model until a folder or sidecar names the language
        return "", None, engine
    route = route_for(language, archive)
    wanted = route.engine or "whisper"
    if engine and (engine == "ctc") != (wanted == "ctc") and language != "auto":
        if engine == "ctc":
            raise ModelMissingError(
                f"--engine ctc: the route for {language} names no CTC model ({route.asr_model or 'none'}). "
                f"Name one with --asr-model, or import one with `testimony models import PATH/TO/EXPORT "
                f"--language {language}`.")
        return resolve_asr("auto", None, None, archive)[0], whisper_token or language, engine
    model, token = resolve_asr(language, None, whisper_token, archive)
    engine = engine or wanted
    return model, (None if engine == "ctc" else token), engine


def _is_ctc(model: str) -> bool:
    """A CTC model in the store, or a CTC export folder given by path."""
    from pipeline.store.ctc_store import ctc_dir, is_ctc_folder

    path = Path(model).expanduser()
    return (ctc_dir() / model).is_dir() or is_ctc_folder(path)
