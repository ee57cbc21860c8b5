"""Every package the product imports is declared in pyproject.toml (or an extra that says what it is for),
not left to arrive through another package's dependencies, which may drop it in any release."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from pipeline.store import toml

REPO = Path(__file__).resolve().parent.parent
EXTRAS_ONLY = {"jiwer": "eval", "sacrebleu": "eval"}  # checked by `testimony eval` before any work


def _imported() -> set[str]:
    """Top-level names of every import in pipeline/ and flows/, lazy ones and import_module strings included."""
    names = set()
    for path in [*REPO.glob("pipeline/**/*.py"), *REPO.glob("flows/**/*.py")]:
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        names |= {m.split(".")[0] for m in re.findall(r'(?:import_module|find_spec)\(\s*"([\w.]+)"', source)}
    return names - set(sys.stdlib_module_names) - {"pipeline", "flows"}


def _normal(name: str) -> str:
    return re.split(r"[<>=!\[;~ ]", name.strip())[0].lower().replace("_", "-").replace(".", "-")


def test_every_imported_package_is_declared():
    project = toml.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_normal(d) for d in project["dependencies"]}
    extras = {_normal(d) for group in project["optional-dependencies"].values() for d in group}
    dists = packages_distributions()
    missing = []
    for module in sorted(_imported()):
        names = {_normal(d) for d in dists.get(module, [module])}
        if not names & declared and not (module in EXTRAS_ONLY and names & extras):
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
