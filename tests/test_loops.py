"""Loops cut, not kept: a repetition that survives the fallback is cut to its first occurrence, the
cut recorded in the segment so review can restore it (`pipeline.asr.loops`)."""

from __future__ import annotations

import json
from dataclasses import asdict

from pipeline.archive.formats import renderings
from pipeline.asr.core import COMPRESSION_RATIO_THRESHOLD, AsrOptions, _segments
from pipeline.asr.loops import loop_start
from pipeline.run.process import RunOptions, process_video
from pipeline.speakers.assign import apply_speakers
from pipeline.speakers.diarize import Turn
from pipeline.stages.vad import SpeechRegion
from pipeline.transcript import POSSIBLE_HALLUCINATION, Segment, Source, Transcript, Word

SPEECH = [SpeechRegion(0.0, 10.0)]


def _raw(text: str, start: float = 0.0, end: float = 2.0) -> dict:
    """One decoded segment in the engines' dict shape, with a word per token spread over its span."""
    tokens = text.split()
    step = (end - start) / len(tokens)
    words = [{"start": start + i * step, "end": start + (i + 1) * step, "word": f" {t}", "probability": 0.5}
             for i, t in enumerate(tokens)]
    return {"text": f" {text}", "start": start, "end": end, "avg_logprob": -0.5, "no_speech_prob": 0.1,
            "compression_ratio": 1.0, "words": words}


def _transcript(segments: list[Segment]) -> Transcript:
    source = Source("a.wav", "0" * 64, 1, 10.0, {"index": 0})
    return Transcript(source, "kk", None, None, {"asr": {}}, segments)


def test_a_loop_is_cut_to_its_first_occurrence_and_the_cut_restores_it():
    text = "мен үйге бардым " + " ".join(["үй"] * 50)
    [seg] = _segments([_raw(text)], SPEECH)
    assert seg.compression_ratio > COMPRESSION_RATIO_THRESHOLD
    assert seg.text == "мен үйге бардым үй"
    assert POSSIBLE_HALLUCINATION in seg.flags, "the flag stays: a person should still listen"
    assert seg.cut["repeats"] == 50 and seg.cut["text"] == " үй" * 49
    assert [w.word for w in seg.words] == [" мен", " үйге", " бардым", " үй"]
    assert (seg.start, seg.end) == (0.0, 2.0), "the span still points at the audio that was heard"
    restored = [*seg.words, *(Word(**w) for w in seg.cut["words"])]
    assert seg.text + seg.cut["text"] == text
    assert "".join(w.word for w in restored).strip() == text and len(restored) == 53


def test_a_looping_phrase_is_cut_even_when_the_window_ended_mid_phrase():
    text = "Сіз қайдан келдіңіз? " * 12 + "Сіз қайдан"
    [seg] = _segments([_raw(text.strip())], SPEECH)
    assert seg.text == "Сіз қайдан келдіңіз?"
    assert seg.cut["repeats"] == 12 and seg.cut["text"].endswith("Сіз қайдан")


def test_a_word_loop_cut_short_by_the_window_is_cut_at_a_word():
    """Met on real Kazakh (base, clip 19): the loop's last word stops mid-word; the cut keeps whole words."""
    text = "қанамың жүзін құріңырі қалің өлің қҚлің " + "қалің " * 20 + "қа"
    [seg] = _segments([_raw(text)], SPEECH)
    assert seg.text == "қанамың жүзін құріңырі қалің өлің қҚлің қалің"
    assert seg.cut["text"] == " қалің" * 19 + " қа" and seg.cut["repeats"] == 20


def test_speech_that_repeats_itself_is_not_cut():
    """A witness's `жоқ жоқ жоқ` compresses badly (short text): flagged or not, never cut."""
    [seg] = _segments([_raw("жоқ жоқ жоқ мен онда болған жоқпын")], SPEECH)
    assert seg.text == "жоқ жоқ жоқ мен онда болған жоқпын" and seg.cut is None
    assert loop_start("бір екі үш".split()) is None
    [hesitation] = _segments([_raw("иә ааа " * 20 + "иә")], SPEECH)
    assert hesitation.cut["text"] == " иә ааа" * 19 + " иә", "the word loop, not the letters of ааа"


def test_repeat_of_the_previous_segment_compares_the_decoded_texts():
    loop = "қош " * 40
    first, second = _segments([_raw(loop), _raw(loop, 2.0, 4.0)], SPEECH)
    assert first.text == second.text == "қош"
    assert POSSIBLE_HALLUCINATION in second.flags


def test_renderings_and_the_schema_carry_the_cut_text(tmp_path):
    [seg] = _segments([_raw("сәлем " + "ау " * 30)], SPEECH)
    transcript = _transcript([seg])
    srt = renderings(transcript)["kk.srt"]
    assert "сәлем ау" in srt and "ау ау" not in srt
    path = tmp_path / "transcript.json"
    path.write_text(transcript.to_json(), encoding="utf-8")
    again = Transcript.load(path)
    assert again.segments[0].cut == seg.cut and again.to_json() == transcript.to_json()


def test_a_transcript_without_cuts_reads_and_writes_as_before(tmp_path):
    """No `cut` key is written for a segment without one: old bundles stay byte-identical."""
    seg = Segment(0, 0.0, 1.0, "сәлем", words=[Word(0.0, 1.0, " сәлем", 0.9)])
    old = _transcript([seg]).to_dict()
    assert "cut" not in old["segments"][0]
    text = json.dumps(old, ensure_ascii=False, indent=2) + "\n"
    assert Transcript.from_dict(json.loads(text)).to_json() == text


def test_a_speaker_split_keeps_the_cut_on_the_part_it_followed():
    [seg] = _segments([_raw("иә иә мен барамын үйге қарай " + "үй " * 20, 0.0, 26.0)], [SpeechRegion(0.0, 26.0)])
    assert seg.cut is not None and len(seg.words) == 7
    transcript = apply_speakers(_transcript([seg]), [Turn(0.0, 3.0, "S1"), Turn(3.0, 26.0, "S2")], {})
    assert [s.speaker for s in transcript.segments] == ["S1", "S2"]
    assert transcript.segments[0].cut is None and transcript.segments[1].cut == asdict(seg)["cut"]


def test_a_real_engines_loop_is_cut_in_the_bundle(tiny_whisper, media, tmp_path):
    """Random weights loop on one character (`去去去…`, no spaces): the whole pipeline cuts it, the
    bundle's text and renderings carry what is left, and the transcript keeps the cut."""
    options = RunOptions(asr=AsrOptions(model=str(tiny_whisper), language="kk", word_timestamps=False,
                                        temperatures=(0.0,)), translate=False, diarize=False)
    result = process_video(media / "kk.wav", tmp_path / "archive", options)
    transcript = Transcript.load(result.bundle / "transcript.json")
    cut = [seg for seg in transcript.segments if seg.cut]
    assert cut, [seg.text for seg in transcript.segments]
    for seg in cut:
        assert POSSIBLE_HALLUCINATION in seg.flags and seg.cut["repeats"] >= 8
        whole = seg.text + seg.cut["text"]
        assert len(seg.text) < len(whole) and whole.startswith(seg.text)
        assert seg.cut["text"] not in (result.bundle / "kk.txt").read_text(encoding="utf-8")
