"""`testimony quality`: the machine's drafts scored against the segments reviewers checked (issue 22).

The bundle is published through the run's own path and corrected through the real save, so the
figures come from real revision files; the expected counts are worked out by hand in each test.
"""

from __future__ import annotations

import json

from pipeline.cli.main import main
from pipeline.evaluation import quality

from .test_review import SHA, _edit, archive  # noqa: F401  (the fixture: a published Kazakh bundle)


def _check(archive):  # noqa: F811
    """A reviewer fixes one word of segment 0 and its English, adds two words with a name to
    segment 1, and checks both; segment 2 stays unchecked."""
    _edit(archive, "Aigul", s0={"text": "Менің әкем лагерде", "checked": True,
                                "translation": "My father is in the camp", "english_source": "edited"},
          s1={"text": "Екі жыл болды Тұрсын үшін", "checked": True})


def test_figures_follow_the_checked_segments(archive, capsys):  # noqa: F811
    _check(archive)
    assert main(["quality", "--out", str(archive), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["checked_segments"] == 2, "the unchecked segment is not ground truth"
    kk = data["groups"]["language"]["kk"]
    # 3 + 5 reference words; 1 substitution (лагерьде -> лагерде) and 2 words the machine missed
    assert (kk["segments"], kk["words"], kk["wer"]) == (2, 8, 0.375)
    assert 0 < kk["cer"] < kk["wer"]
    assert kk["hours"] == round((2.4 - 0.5 + 5.0 - 3.0) / 3600, 4)
    assert set(data["groups"]["model"]) == {"base (kk)"}
    assert list(data["groups"]["recording"]) == [SHA[:12]]
    assert {"heard": "лагерьде", "written": "лагерде", "times": 1} in data["corrections"]
    assert data["glossary_lines"] == [{"name": "Тұрсын", "times": 1}]
    assert data["english"]["kk"]["segments"] == 1 and 0 < data["english"]["kk"]["chrf"] < 100


def test_text_view_filters_and_glossary(archive, capsys, tmp_path):  # noqa: F811
    _check(archive)
    assert main(["quality", "--out", str(archive)]) == 0
    text = capsys.readouterr().out
    assert "per language" in text and "37.5%" in text and "лагерьде -> лагерде" in text
    glossary = tmp_path / "names.txt"
    glossary.write_text("Тұрсын\n", encoding="utf-8")
    assert main(["quality", "--out", str(archive), "--json", "--glossary", str(glossary)]) == 0
    assert json.loads(capsys.readouterr().out)["glossary_lines"] == [], "a name the glossary has is not offered"
    assert main(["quality", "--out", str(archive), "--language", "ug"]) == 1, "nothing checked in Uyghur"
    assert "0 checked segment(s)" in capsys.readouterr().out
    assert main(["quality", "--out", str(archive), "--since", "2999-01-01"]) == 1


def test_an_unreviewed_archive_has_nothing_to_score(archive, capsys):  # noqa: F811
    assert quality.summary(quality.collect(archive))["checked_segments"] == 0
    assert main(["quality", "--out", str(archive)]) == 1
