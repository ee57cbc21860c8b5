"""Installing the models the manifest knows, by name or as a language's recommended set.

An official Whisper checkpoint comes from OpenAI's URL (`store.official`, resumable) and is checked
against the SHA-256 in it; a
hub repository (a Whisper fine-tune, a CTC export, an NLLB or Marian model) comes through `store.hub`, every file
checked against the hash the hub publishes, and is then converted and routed exactly as
`testimony models import` does with a copied folder. Either way the model is installed whole or
not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import TestimonyError
from pipeline.store import hub
from pipeline.store import registry as model_registry
from pipeline.store.registry import KnownModel, Recommended


class UnknownModelError(TestimonyError):
    """A name that is neither an official Whisper model nor in the manifest."""


@dataclass(frozen=True)
class Done:
    name: str
    note: str


def official_whisper_names() -> list[str]:
    import whisper

    return whisper.available_models()


def is_installed(known: KnownModel, language: str | None = None) -> bool:
    """Whether the store holds `known` (for `language`, when it is a translation model)."""
    for model in model_registry.installed_models():
        if known.kind in ("whisper", "ctc") and model.kind == known.kind and model.name == known.name:
            return True
        if known.kind == "translation" and model.kind == "argos" and model.record.get("model") == known.name \
                and language in (None, model.record.get("from_code")):
            return True
    return known.kind == "whisper" and known.name == "base" and _packaged_base()


def _packaged_base() -> bool:
    from pipeline.store.ct2_to_openai import packaged_base_parts

    return packaged_base_parts() is not None


def install(name: str, languages: list[str] | None = None) -> list[Done]:
    """Install one model by name; `languages` route a Whisper fine-tune or pick a translation model's sources."""
    known = model_registry.known_models().get(name)
    if known is not None and known.repo_id:
        return _from_hub(known, languages or ([known.language] if known.language else []))
    if name in official_whisper_names():
        return [_official(name, languages or [])]
    if known is not None:
        raise UnknownModelError(f"{name} has no hub repository this store installs from ({known.source}): "
                                f"{known.hint or 'import it: testimony models import FOLDER'}")
    raise UnknownModelError(f"unknown model '{name}'; known: {', '.join(_names())}")


def _names() -> list[str]:
    return sorted(set(official_whisper_names()) | set(model_registry.known_models()))


def _official(name: str, languages: list[str]) -> Done:
    """An official checkpoint (its own tokens: each language decodes as itself), routed for `languages`."""
    from pipeline.store import routes
    from pipeline.store.whisper_store import install_official

    record = install_official(name)  # converts base from its packages, or downloads with the URL's SHA-256
    for language in languages:
        routes.set_route(language, asr_model=name, whisper_token=language, engine="")
    routed = f"; route {', '.join(languages)} -> {name}" if languages else ""
    return Done(name, f"installed Whisper {name}: {record.path} (sha256 {record.sha256[:12]}, {record.origin}){routed}")


def _from_hub(known: KnownModel, languages: list[str]) -> list[Done]:
    """Download, check, then import as a copied folder would be; the staging folder goes afterwards."""
    from pipeline.store.importer import import_model

    if known.kind == "translation" and not languages:
        raise TestimonyError(f"name the source language(s): testimony models install {known.name} --language kk")
    folder, commit = hub.download(known.repo_id)
    imported = import_model(folder, languages=languages, whisper_token=known.whisper_token, name=known.name,
                            licence=known.licence or None)
    hub.discard(known.repo_id)
    return [Done(item.name, f"{item.note} (from {hub.endpoint()}/{known.repo_id} at {commit[:12]})")
            for item in imported]


def sets_for(languages: list[str]) -> list[Recommended]:
    sets = model_registry.recommended_sets()
    missing = [lang for lang in languages if lang not in sets]
    if missing:
        raise TestimonyError(f"no recommended set for {', '.join(missing)} (sets: {', '.join(sorted(sets)) or 'none'})")
    return [sets[lang] for lang in languages]


ENGINES = ("whisper", "ctc")  # `install --for --engine`: the set's `asr` (a Whisper model) or its `ctc` choice
TRANSLATIONS = ("set", "madlad")  # `install --for --translation`: the set's `translation`, or its `madlad`


def choices(chosen: Recommended, engine: str = "whisper", translation: str = "set") -> tuple[str | None, str | None]:
    """(ASR model, translation model) a set gives for `engine` and `translation`; a set that names no
    model for the asked choice is an error naming the field, before anything is downloaded."""
    asr = chosen.ctc if engine == "ctc" else chosen.asr
    mt = chosen.madlad if translation == "madlad" else chosen.translation
    for asked, field, name in ((engine == "ctc", "ctc", asr), (translation == "madlad", "madlad", mt)):
        if asked and not name:
            raise UnknownModelError(f"the recommended set for {chosen.language} names no {field} model "
                                    f"(add `{field} = \"NAME\"` to [recommended.{chosen.language}] in the manifest)")
    return asr, mt


def installable(name: str, language: str) -> KnownModel | None:
    """The manifest entry of a set's model (None: an official Whisper name); raises, with the manifest's
    offline steps, for one no hub serves in a form this store installs (GigaAM: export it, then import)."""
    known = model_registry.known_models().get(name)
    if known is None and name not in official_whisper_names():
        raise UnknownModelError(f"the recommended set for {language} names '{name}', which the manifest does not list")
    if known is not None and not known.repo_id and name not in official_whisper_names() \
            and not is_installed(known, language):
        raise UnknownModelError(f"{language}: {name} is not on a hub in a form this store installs, so nothing was "
                                f"installed; {known.hint or 'import it: testimony models import FOLDER'}")
    return known


def install_for(languages: list[str], engine: str = "whisper", translation: str = "set") -> list[Done]:
    """Each language's recommended ASR model (its `ctc` one with engine "ctc") and translation model (its
    `madlad` one with translation "madlad") that the store does not hold yet; a model two languages share
    (NLLB for kk and ug) is downloaded once, with both. Every model is checked installable before the first
    download, so a set that cannot be installed whole installs nothing."""
    done, wanted = [], {}
    picked = [(chosen, choices(chosen, engine, translation)) for chosen in sets_for(languages)]
    checked = {(name, chosen.language): installable(name, chosen.language)
               for chosen, names in picked for name in filter(None, names)}
    for (name, language), known in checked.items():
        if known is not None and is_installed(known, language):
            done.append(_keep(known, language))
        else:
            wanted.setdefault(name, []).append(language)
    for name, langs in wanted.items():
        done += install(name, langs)
    _pin_translations(picked)
    return done


def _pin_translations(picked: list[tuple[Recommended, tuple[str | None, str | None]]]) -> None:
    """Each language's route names the translation model the command chose (`translate`), as its ASR
    route names the ASR model: with several kk->en packages installed (the set's and MADLAD, say), the
    one asked for is the one runs use, whichever an earlier command pinned. Only after every install
    went through: a command that fails changes no route."""
    from pipeline.store import routes

    for chosen, (_asr, translation) in picked:
        if translation and routes.route_for(chosen.language).translate != translation:
            routes.set_route(chosen.language, translate=translation)


def _keep(known: KnownModel, language: str) -> Done:
    """An installed model of the set: an ASR model is routed for the language all the same (a CTC model
    with its engine, which has no Whisper token); a translation model is pinned with the others."""
    from pipeline.store import routes

    if known.kind == "whisper":
        routes.set_route(language, asr_model=known.name, whisper_token=known.whisper_token or language,
                          engine="")
    elif known.kind == "ctc":
        routes.set_route(language, asr_model=known.name, whisper_token="", engine="ctc")
    return Done(known.name, f"{known.name} is installed already ({language})")
