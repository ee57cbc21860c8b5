"""`testimony eval`: normalisation per script, scores on hand-computed strings, and the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.evaluation import devset
from pipeline.evaluation.evaluate import ClipResult, aggregate, load_manifest, score_text, translation_scores
from pipeline.evaluation.textnorm import normalize

from . import media_factory as mf

TINY_FLAGS = ["--no-word-timestamps", "--no-fallback"]  # random weights: deterministic and quick


def _row(article: str) -> dict[str, str]:
    return next(r for r in devset.udhr(mf.SHARED_DATA) if r["id"] == article)


# Normalisation -------------------------------------------------------------------------------------

def test_kazakh_variants_normalise_equal():
    text = _row("art3.1")["kk"]  # Әр адам өмір сүруге, бостандықта болуға және ... құқылы.
    variants = [
        text.upper(),
        text.replace(",", " —").replace(".", "!"),
        "  " + text.replace(" ", "\u00a0 ") + "\u200b",  # no-break spaces, a zero-width space
        text.replace("өмір", "өмiр").replace("адам", "aдам"),  # Latin i and a typed inside Cyrillic words
        text.replace("сүруге", "СYРУГЕ"),  # upper-case Latin Y in a Cyrillic word reads as Ү
    ]
    expected = "әр адам өмір сүруге бостандықта болуға және оның жеке басына қол сұғылмауына құқылы"
    assert normalize(text, "kk") == expected
    for variant in variants:
        assert normalize(variant, "kk") == expected, variant
    hyphenated = _row("art1.1")["kk"]  # қадір‐қасиеті, with U+2010
    assert "қадір қасиеті" in normalize(hyphenated, "kk")
    assert normalize("Ёлка", "kk") == normalize("елка", "kk")
    # Distinct Kazakh letters stay distinct: қ/к, і/и, ү/ұ are different words.
    assert normalize("құқылы", "kk") != normalize("кукылы", "kk")
    assert normalize("өмір", "kk") != normalize("өмир", "kk")


def test_uyghur_variants_normalise_equal():
    text = _row("art3.1")["ug-Arab"]  # ھەممە ئادەم ھاياتلىقتىن، ... ھوقۇقلۇق.
    expected = normalize(text, "ug")
    assert "،" not in expected and "." not in expected and expected.startswith("ھەممە ئادەم")
    variants = [
        text.replace("ھەممە", "ھـەممـە").replace("ھوقۇقلۇق", "ھوقـــۇقلۇق"),  # tatweel
        text.replace("ئادەم", "ئادَەم").replace("ۋە", "ۋَە"),  # harakat (fatha) UEY does not write
        text.replace("،", " ,").replace(".", "؟"),  # Latin comma, Arabic question mark
        text.replace("ئادەم", "\u064a\u0654ادەم"),  # decomposed hamza: yeh + hamza above
        text.replace("ئادەم", "\u0649\u0654ادەم"),  # hamza typed over the dotless seat
        text.replace("بىخەتەرلىكتىن", "بىخەتەرلىکتىن"),  # Persian keheh for kaf
        text.replace("ھايات", "ھایات").replace("ھەممە ", "ھەممه "),  # Farsi yeh inside (y), heh at word end
        text.replace("ۋە", "\ufbdeە").replace("ھەممە", "\ufbacەممە"),  # presentation forms (PDF copy)
        text.replace(" ", " \u200c", 3),  # zero-width non-joiners
    ]
    for variant in variants:
        assert normalize(variant, "ug") == expected, variant
    other = _row("art9.1")["ug-Arab"]  # ... ياكى سۈرگۈن ...: Farsi yeh at a word's end is ى (i)
    assert normalize(other.replace("ياكى", "ياکی"), "ug") == normalize(other, "ug")
    # ي (y) and ى (i), و (o) and ۇ (u), ې (é) and ە (e) are distinct UEY letters: never merged.
    assert normalize("ياكى", "ug") != normalize("ىاكى", "ug")
    assert normalize("قول", "ug") != normalize("قۇل", "ug")
    assert normalize("كېرەك", "ug") != normalize("كەرەك", "ug")


def test_english_uses_whispers_normaliser():
    assert normalize("And Mr. John Dashwood, an ill-disposed man.", "en") == \
        normalize("and mister john dashwood an ill disposed man", "en")
    assert normalize("Colour; 2", "en") == "color 2"


# Scores ------------------------------------------------------------------------------------------

def test_wer_and_cer_on_hand_computed_strings():
    s = score_text("Әр адам өмір сүруге.", "әр адам омир", "kk")
    # words: әр, адам hit; өмір -> омир substituted; сүруге deleted: 2 edits / 4 words
    assert (s["substitutions"], s["deletions"], s["insertions"]) == (1, 1, 0)
    assert s["wer"] == pytest.approx(2 / 4)
    # characters of "әр адам өмір сүруге" (19 with spaces): ө->о and і->и substituted, " сүруге" (7) deleted
    assert (s["ref_chars"], s["char_edits"]) == (19, 9)
    assert s["cer"] == pytest.approx(9 / 19)
    assert score_text("he was not an ill disposed young man", "He was not an ill-disposed young man.",
                      "en")["wer"] == 0.0
    assert score_text("a b", "", "en")["wer"] == 1.0, "no transcript: every reference word deleted"


def test_chrf_and_bleu_on_hand_computed_strings():
    # Character n-grams of orders 1..6 in "abcdefg" vs "abcdefh": (7-n) of the (8-n) match at each
    # order, precision = recall, so chrF = mean(6/7, 5/6, 4/5, 3/4, 2/3, 1/2) = 73.452...
    assert translation_scores(["abcdefg"], ["abcdefh"])["chrf"] == pytest.approx(
        100 * (6 / 7 + 5 / 6 + 4 / 5 + 3 / 4 + 2 / 3 + 1 / 2) / 6)
    same = translation_scores(["Everyone has the right to life."], ["Everyone has the right to life."])
    assert same == {"chrf": pytest.approx(100), "bleu": pytest.approx(100)}


def test_language_figures_are_corpus_figures():
    def result(clip_id, language, ref, hyp, detected, seconds):
        r = ClipResult(clip_id, f"{clip_id}.wav", language, ref, None, hypothesis=hyp,
                       detected_language=detected, duration=seconds, process_s=seconds / 2)
        r.scores = score_text(ref, hyp, language)
        return r

    results = [result("a", "kk", "әр адам өмір сүруге", "әр адам", "kk", 4.0),  # 2 edits / 4 words
               result("b", "kk", "құқылы", "кукылы", "ru", 2.0),  # 1 edit / 1 word
               result("c", "ug", "ھەممە ئادەم", "ھەممە ئادەم", "fa", 2.0)]
    results[0].reference_en = "Everyone has the right to life."
    report = aggregate(results, {"translate_to_english": False})
    kk = report["languages"]["kk"]
    assert kk["wer"] == pytest.approx(3 / 5), "total edits / total words, not the mean of 0.5 and 1.0"
    assert kk["rtf"] == pytest.approx(0.5)
    assert kk["language_id"] == {"correct": 1, "total": 2, "detectable": True, "accuracy": 0.5,
                                 "detected": {"kk": 1, "ru": 1}}
    assert report["languages"]["ug"]["language_id"]["accuracy"] is None, "Whisper has no ug class"
    assert report["totals"]["language_id"] == {"correct": 1, "total": 2, "accuracy": 0.5, "excluded": ["ug"]}
    assert "--no-translate" in kk["translation"]["skipped"]


def test_manifest_errors_name_the_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('# comment\n{"audio": "a.wav", "language": "kk", "reference": "сөз"}\n'
                        '{"audio": "missing.wav", "language": "kk", "reference": "сөз"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"m.jsonl:3: audio file .*missing.wav not found"):
        load_manifest(manifest)
    manifest.write_text('{"audio": "a.wav", "language": "kk"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"m.jsonl:1: missing reference"):
        load_manifest(manifest)
    manifest.write_text('{"audio": "a.wav", "language": "kk", "reference": "сөз"}\n', encoding="utf-8")
    assert load_manifest(manifest)[0].id == "a"


# The command, end to end -------------------------------------------------------------------------

def test_eval_end_to_end_with_tiny_model(tiny_whisper, tmp_path, capsys):
    manifest = devset.build_devset(tmp_path / "dev", per_language=1, languages=("en", "kk"))
    lines = manifest.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["language"] for line in lines] == ["en", "kk"]
    out = tmp_path / "report"
    rc = main(["eval", str(manifest), "--out", str(out), "--asr-model", str(tiny_whisper), *TINY_FLAGS])
    assert rc == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["schema"] == "testimony.eval/1" and report["mode"] == "clip"
    assert [c["id"] for c in report["clips"]] == ["en-0870", "kk-art15.1"]
    for clip in report["clips"]:
        scores = clip["scores"]
        assert clip["error"] is None and Path(clip["bundle"], "transcript.json").is_file()
        assert scores["wer"] >= 0 and scores["cer"] >= 0
        assert scores["wer"] == pytest.approx(scores["word_edits"] / scores["ref_words"])
        assert clip["duration"] > 1 and clip["process_s"] > 0 and clip["detect_s"] > 0
        assert clip["detected_language"], "the detection pass ran"
    assert report["clips"][1]["whisper_token"] == "kk", "forced to the clip's language"
    for language, entry in report["languages"].items():
        clip = next(c for c in report["clips"] if c["language"] == language)
        assert entry["wer"] == pytest.approx(clip["scores"]["wer"])
        assert entry["rtf"] == pytest.approx(clip["process_s"] / clip["duration"], rel=0.01)
    assert "kk -> en" in report["languages"]["kk"]["translation"]["skipped"], "no package: says which"
    assert report["languages"]["en"]["translation"]["skipped"] == "English speech is not translated"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| en-0870 |" in md and "| kk-art15.1 |" in md and "chrF/BLEU skipped" in md
    stdout = capsys.readouterr().out
    assert "kk: 1 clips  WER" in stdout and str(out / "report.md") in stdout


def test_eval_reports_a_clip_that_cannot_run(tiny_whisper, tmp_path):
    """Uyghur with no token to decode with: the clip is listed with its error and scored as no text."""
    dev = tmp_path / "dev"
    devset.speak(_row("art15.1")["ug-Arab"], "ug", dev / "ug.wav")
    (dev / "m.jsonl").write_text(json.dumps({"audio": "ug.wav", "language": "ug",
                                             "reference": _row("art15.1")["ug-Arab"]}) + "\n", encoding="utf-8")
    rc = main(["eval", str(dev / "m.jsonl"), "--out", str(tmp_path / "r"), "--asr-model", str(tiny_whisper),
               *TINY_FLAGS, "--no-translate"])
    assert rc == 1
    clip = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))["clips"][0]
    assert "--whisper-token" in clip["error"] and clip["scores"]["wer"] == 1.0


@pytest.mark.slow
def test_eval_with_real_base_weights_on_librivox(converted_base, tmp_path):
    utt, wav, reference = next(c for c in devset.librivox() if c[0].endswith("0880"))  # 3 s
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "en-0880", "audio": str(wav), "language": "en",
                                    "reference": reference}) + "\n", encoding="utf-8")
    assert main(["eval", str(manifest), "--out", str(tmp_path / "r"), "--asr-model", str(converted_base)]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["languages"]["en"]["wer"] < 0.1, report["clips"][0]["hypothesis"]
    assert report["totals"]["language_id"]["accuracy"] == 1.0
