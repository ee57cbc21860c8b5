"""The licence a downloaded model folder states: its model card's `license:` front matter, else a LICENSE
file's title, as an SPDX name (moved from `hf_to_argos`, which is its user)."""

from __future__ import annotations

from pathlib import Path

SPDX = {"cc-by-nc-4.0": "CC-BY-NC-4.0", "cc-by-4.0": "CC-BY-4.0", "mit": "MIT", "apache-2.0": "Apache-2.0"}
LICENCE_TITLES = (("Attribution-NonCommercial 4.0", "CC-BY-NC-4.0"), ("Attribution 4.0", "CC-BY-4.0"),
                  ("MIT License", "MIT"), ("Apache License", "Apache-2.0"))


def card_licence(path: Path) -> str | None:
    """The licence the download states: a model card's `license:` front matter, else a LICENSE file's title."""
    readme = path / "README.md"
    lines = readme.read_text(encoding="utf-8", errors="replace").splitlines() if readme.is_file() else []
    if not lines or lines[0].strip() != "---":
        for name in ("LICENSE", "LICENSE.txt", "LICENSE.md"):
            if (path / name).is_file():
                head = " ".join((path / name).read_text(encoding="utf-8", errors="replace")[:2000].split())
                for title, spdx in LICENCE_TITLES:
                    if title in head:
                        return spdx
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() in ("license", "licence") and value.strip():
            value = value.strip().strip("'\"")
            return SPDX.get(value.lower(), value)
    return None
