"""`testimony sample`: two small interview videos to try the pipeline on, made on this machine.

English: three real LibriVox readings (Debian's pocketsphinx-testdata) after a 3 s quiet start, 2 s apart;
Kazakh: UDHR article 3 (the official UN translation) spoken by espeak-ng after 2 s of quiet. Each becomes
a small H.264/AAC video, as an interview recording is. ffmpeg is the system's or the one imageio-ffmpeg
ships; the speech sources are system packages, and a missing one is named in one line with its install.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

from pipeline.errors import TestimonyError

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
READINGS = [f"sense_and_sensibility_01_austen_64kb-{n}.wav" for n in ("0870", "0880", "0890")]
KAZAKH = "Әр адам өмір сүруге, бостандықта болуға және оның жеке басына қол сұғылмауына құқылы."


def add_parser(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser("sample", help="make two small sample interview videos (English, Kazakh) to try")
    sample.add_argument("folder", nargs="?", type=Path, default=Path("sample"), help="where (default: sample/)")


def cmd_sample(args: argparse.Namespace) -> int:
    try:
        for video in make_samples(args.folder):
            print(video)
    except TestimonyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def make_samples(folder: Path) -> list[Path]:
    """interview-en.mp4 and interview-kk.mp4 in `folder`; their sources are checked before any is made."""
    readings = [LIBRIVOX / name for name in READINGS]
    if not all(path.is_file() for path in readings):
        raise TestimonyError(f"the English sample reads LibriVox clips from {LIBRIVOX}: install them with "
                             "`apt install pocketsphinx-testdata` (Debian, Ubuntu)")
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise TestimonyError("the Kazakh sample is spoken by espeak-ng: install it with `apt install espeak-ng`")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        english, kazakh = Path(tmp, "en.wav"), Path(tmp, "kk.wav")
        _ffmpeg(*_quiet(3), *_quiet(2), *[a for path in readings for a in ("-i", str(path))],
                "-filter_complex", "[0][2][1][3][1][4]concat=n=6:v=0:a=1[a]", "-map", "[a]", str(english))
        subprocess.run([espeak, "-v", "kk", "-s", "150", "-w", str(Path(tmp, "kk-speech.wav")), KAZAKH], check=True)
        _ffmpeg(*_quiet(2, 22050), "-i", str(Path(tmp, "kk-speech.wav")),
                "-filter_complex", "[0][1]concat=n=2:v=0:a=1[a]", "-map", "[a]", str(kazakh))
        return [_video(english, folder / "interview-en.mp4"), _video(kazakh, folder / "interview-kk.mp4")]


def _quiet(seconds: float, rate: int = 16000) -> list[str]:
    return ["-f", "lavfi", "-t", str(seconds), "-i", f"anullsrc=r={rate}:cl=mono"]


def _video(audio: Path, out: Path) -> Path:
    """A dark still picture for as long as the speech, with the speech as 48 kHz stereo AAC."""
    with wave.open(str(audio)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    _ffmpeg("-f", "lavfi", "-i", "color=c=0x202830:s=320x240:r=10", "-i", str(audio), "-t", f"{seconds:.3f}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-ac", "2", str(out))
    return out


def _ffmpeg(*args: str) -> None:
    from pipeline.stages.media import ffmpeg_binary

    done = subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise TestimonyError(f"ffmpeg could not make the sample: {done.stderr.strip().splitlines()[-1:]}")
