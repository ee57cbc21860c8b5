"""Media stage: probe a video, pick its audio track, extract 16 kHz mono PCM, check nothing was lost.

ffmpeg exits 0 on a truncated file and hands back only part of the audio while the container still
reports the full duration, so the decoded length is always compared with the container's.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import subprocess
import wave
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline import atomic, config, failpoints
from pipeline.errors import BadInputError, TestimonyError

SAMPLE_RATE = 16_000
# A decode this much shorter than the container says is a truncated file, not codec padding.
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_RATIO = 0.02
# Every ffmpeg/ffprobe call has a deadline: a file can make either wait forever (a playlist naming a
# pipe, a network stream), and one such file must not stop a batch or the service.
PROBE_TIMEOUT_ENV = "TESTIMONY_PROBE_TIMEOUT"  # seconds for a probe (default 60)
EXTRACT_TIMEOUT_ENV = "TESTIMONY_EXTRACT_TIMEOUT"  # the least seconds a decode gets (default 120)
BYTES_PER_SECOND = 1_000_000  # the least a decode of a file that states no length must read
# Formats that are lists of other files or streams (ffmpeg recognises a playlist whatever its name), and
# inputs that are not files: ffmpeg never uses them, so a file in the inbox cannot make it read another.
DENIED_FORMATS = frozenset({"concat", "hls", "applehttp", "dash", "imf", "lavfi", "sdp", "rtp", "rtsp",
                            "avisynth", "vapoursynth", "webm_dash_manifest"})
PLAYLIST_STARTS = (b"ffconcat version", b"#EXTM3U", b"#EXT-X-")  # what a playlist's first line says


@dataclass(frozen=True)
class AudioStream:
    index: int  # stream index in the container
    track: int  # ordinal among the audio streams (what --audio-track counts)
    codec: str
    channels: int
    sample_rate: int
    language: str | None = None
    default: bool = False
    duration: float | None = None  # the stream's own duration where the container records one


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    duration: float | None  # seconds, as the container reports it
    audio: list[AudioStream] = field(default_factory=list)


@dataclass(frozen=True)
class ExtractedAudio:
    wav_path: Path
    stream: AudioStream
    container_duration: float | None
    expected_duration: float | None  # the stream's own length, else the container's
    decoded_duration: float
    truncated: bool


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """System ffmpeg when present, else the binary imageio-ffmpeg ships, so `pip install` suffices."""
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=1)
def ffprobe_binary() -> str | None:
    """ffprobe sits beside a system ffmpeg; imageio-ffmpeg ships none (then we parse `ffmpeg -i`)."""
    beside = Path(ffmpeg_binary()).with_name("ffprobe")
    return str(beside) if beside.exists() else shutil.which("ffprobe")


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    out = run_tool([ffmpeg_binary(), "-version"], Path(ffmpeg_binary()), probe_timeout(), "ffmpeg -version")
    text = out.stdout.decode("utf-8", "replace")
    return text.split("\n", 1)[0].replace("ffmpeg version ", "").split(" Copyright")[0].strip()


def _seconds_from_env(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value and float(value) > 0 else default
    except ValueError:
        raise TestimonyError(f"{name}={value!r} is not a number of seconds: set a positive number, "
                             "or unset it") from None


def probe_timeout() -> float:
    """Reading a container's header takes well under a second; a minute is a file that hangs."""
    return _seconds_from_env(PROBE_TIMEOUT_ENV, 60.0)


def extract_timeout(duration: float | None, size: int = 0) -> float:
    """Decoding audio runs at hundreds of times real time: twice the media's length is a hung decode.
    A file that states no length gets a second per MB it holds (no disk reads slower than that)."""
    floor = _seconds_from_env(EXTRACT_TIMEOUT_ENV, 120.0)
    return max(floor, 2 * duration if duration and duration > 0 else size / BYTES_PER_SECOND)


def run_tool(args: list[str], path: Path, timeout: float, what: str) -> subprocess.CompletedProcess:
    """An external tool on `path`, killed when it outlives `timeout`: the file is then named as the cause."""
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:  # subprocess.run has already killed it (SIGKILL) and reaped it
        raise BadInputError(path, f"{what} did not finish within {timeout:g} s and was stopped",
                            "The file may be damaged or a playlist naming a pipe or stream; check it, or "
                            f"raise {PROBE_TIMEOUT_ENV}/{EXTRACT_TIMEOUT_ENV} for a very slow disk.") from None


@lru_cache(maxsize=1)
def allowed_formats() -> str:
    """The demuxers ffmpeg may pick for an input, comma-separated: all it has but the denied ones and
    devices (`-format_whitelist` takes only a list of what is allowed)."""
    done = run_tool([ffmpeg_binary(), "-hide_banner", "-demuxers"], Path(ffmpeg_binary()), probe_timeout(),
                    "ffmpeg -demuxers")
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    listed = lines[next((n for n, ln in enumerate(lines) if ln.strip() == "--"), -1) + 1:]
    names = [fields[1] for fields in (ln.split() for ln in listed)
             if len(fields) >= 2 and "D" in fields[0] and "d" not in fields[0]]
    if not names:  # an empty whitelist would allow every format
        raise TestimonyError(f"{ffmpeg_binary()} -demuxers listed no input formats; check the ffmpeg install")
    return ",".join(n for n in names if not DENIED_FORMATS & set(n.split(",")))


def input_options() -> dict[str, str]:
    """What every ffmpeg/ffprobe input gets: the `file` protocol only (no pipe, fd, network or `concat:`
    URL) and no playlist format, so a file is read as itself and never leads to another file."""
    return {"protocol_whitelist": "file", "format_whitelist": allowed_formats()}


def input_args() -> list[str]:
    """`input_options` as command-line flags, placed before the input."""
    return [arg for key, value in input_options().items() for arg in (f"-{key}", value)]


def _url(path: Path) -> str:
    """Absolute `file:` URL: a name with a leading dash or a colon is never read as an option/protocol."""
    return "file:" + str(path.absolute())


def check_readable(path: Path) -> None:
    if not path.exists():
        raise BadInputError(path, "file not found", "Check the path and try again.")
    if path.is_dir():
        raise BadInputError(path, "is a folder, not a video", "Pass the video files inside it.")
    if not stat.S_ISREG(path.stat().st_mode):  # reading a pipe or a device could wait forever
        raise BadInputError(path, "is not a regular file (a pipe, socket or device)",
                            "Copy the recording itself into a file and give that.")
    if not os.access(path, os.R_OK):
        raise BadInputError(path, "cannot be read (permission denied)",
                            "Give this user read permission on the file and run again.")
    if path.stat().st_size == 0:
        raise BadInputError(path, "is empty (0 bytes)",
                            "The upload or copy probably failed; copy the original again.")


def refuse_playlist(path: Path) -> None:
    """A playlist (ffconcat, HLS) names other files: refused by what it says, before any tool reads it."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(PLAYLIST_STARTS):
        raise _playlist(path, "ffconcat" if head.startswith(b"ffconcat") else "HLS .m3u8")


def _playlist(path: Path, kind: str) -> BadInputError:
    return BadInputError(path, f"is a playlist ({kind}) naming other files, not a recording; it is never "
                         "followed", "Copy the recording itself into the inbox (or give its own path).")


def _not_media(path: Path, detail: str) -> BadInputError:
    if refused := re.search(r"\[(\w+) @ [^]]*\] Format not on whitelist", detail):
        return _playlist(path, refused[1])  # a format recognised and refused (a playlist by another name)
    detail = detail.strip().splitlines()[-1] if detail.strip() else "unknown error"
    return BadInputError(path, f"is not a video or audio file ffmpeg can read ({detail})",
                         "Check that the file is complete and is really a video; "
                         "re-export or copy the original again.")


def probe(path: str | Path) -> MediaInfo:
    """Read the container's duration and audio streams."""
    path = Path(path)
    check_readable(path)
    refuse_playlist(path)
    probe_bin = ffprobe_binary()
    if probe_bin:
        done = run_tool([probe_bin, *input_args(), "-show_format", "-show_streams", "-of", "json", _url(path)],
                        path, probe_timeout(), "ffprobe")
        if done.returncode != 0:
            raise _not_media(path, done.stderr.decode("utf-8", "replace"))
        return _from_ffprobe(path, json.loads(done.stdout.decode("utf-8", "replace")))
    return _probe_with_ffmpeg(path)


def _refuse_format(path: Path, name: str | None) -> None:
    """Refused formats are never on the whitelist; this holds should a tool ignore it."""
    if denied := DENIED_FORMATS & set((name or "").split(",")):
        raise _playlist(path, sorted(denied)[0])


def _from_ffprobe(path: Path, data: dict) -> MediaInfo:
    fmt = data.get("format", {})
    _refuse_format(path, fmt.get("format_name"))
    duration = _seconds(fmt.get("duration"))
    audio = []
    for stream in data.get("streams", []):
        if stream.get("codec_type") != "audio":
            continue
        audio.append(AudioStream(
            index=int(stream["index"]),
            track=len(audio),
            codec=stream.get("codec_name", "unknown"),
            channels=int(stream.get("channels") or 0),
            sample_rate=int(stream.get("sample_rate") or 0),
            language=(stream.get("tags") or {}).get("language"),
            default=bool((stream.get("disposition") or {}).get("default")),
            duration=_seconds(stream.get("duration")) or _clock((stream.get("tags") or {}).get("DURATION")),
        ))
    return MediaInfo(path=path, duration=duration, audio=audio)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except ValueError:
        return None


def _clock(value: str | None) -> float | None:
    """'HH:MM:SS.fff', as Matroska stores a stream's length in its DURATION tag."""
    if not value or not (m := _CLOCK.search(value)):
        return None
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


_CLOCK = re.compile(r"(\d+):(\d+):(\d+(?:\.\d+)?)")
_DURATION = re.compile(r"Duration: (\d+:\d+:\d+(?:\.\d+)?)")
_STREAM_DURATION = re.compile(r"^\s+DURATION\s*:\s*(\S+)", re.MULTILINE)
_AUDIO = re.compile(r"Stream #0:(\d+)(?:\[\w+\])?(?:\((\w+)\))?: Audio: (\w+)[^,]*, (\d+) Hz, ([^,]+)(.*)")


def _probe_with_ffmpeg(path: Path) -> MediaInfo:
    """Fallback when only imageio-ffmpeg's binary exists: parse `ffmpeg -i` (it exits 1 by design)."""
    result = run_tool([ffmpeg_binary(), "-nostdin", "-hide_banner", *input_args(), "-i", _url(path)], path,
                      probe_timeout(),
                      "ffmpeg (reading the header)")
    text = result.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        raise _not_media(path, text)
    _refuse_format(path, m[1] if (m := re.search(r"Input #0, ([\w,]+), from", text)) else None)
    duration = _clock(m[1]) if (m := _DURATION.search(text)) else None
    audio = []
    for block in text.split("  Stream #0:")[1:]:  # one block per stream, its metadata lines included
        if not (m := _AUDIO.match("Stream #0:" + block)):
            continue
        layout = m[5].strip()
        channels = {"mono": 1, "stereo": 2}.get(layout) or _layout_channels(layout)
        tagged = _STREAM_DURATION.search(block)
        audio.append(AudioStream(index=int(m[1]), track=len(audio), codec=m[3], channels=channels,
                                 sample_rate=int(m[4]), language=m[2],
                                 default="(default)" in m[6], duration=_clock(tagged[1]) if tagged else None))
    return MediaInfo(path=path, duration=duration, audio=audio)


def _layout_channels(layout: str) -> int:
    """'5.1(side)' -> 6, '7.1' -> 8, '4 channels' -> 4."""
    if m := re.match(r"(\d+)\.(\d+)", layout):
        return int(m[1]) + int(m[2])
    m = re.match(r"(\d+)", layout)
    return int(m[1]) if m else 2


def pick_audio_stream(info: MediaInfo, track: int | None = None) -> AudioStream:
    """The requested track, else the stream marked default, else the first audio stream."""
    if not info.audio:
        raise BadInputError(info.path, "has no audio stream",
                            "Nothing can be transcribed; check that the recording has sound "
                            "(re-export it with its audio track).")
    if track is not None:
        if not 0 <= track < len(info.audio):
            raise BadInputError(info.path, f"has no audio track {track} "
                                f"(it has {len(info.audio)}: 0..{len(info.audio) - 1})",
                                "Pick one of those with --audio-track.")
        return info.audio[track]
    return next((s for s in info.audio if s.default), info.audio[0])


def extract_audio(info: MediaInfo, wav_path: str | Path, *, track: int | None = None) -> ExtractedAudio:
    """Decode one audio stream to 16 kHz mono 16-bit WAV and compare its length with the container's."""
    stream = pick_audio_stream(info, track)
    wav_path = Path(wav_path)
    config.private_dirs(wav_path.parent)
    partial = wav_path.with_name(wav_path.name + ".partial")
    mode = config.file_mode()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)  # ffmpeg truncates it, keeping the mode
    os.fchmod(fd, mode)
    os.close(fd)
    source = _utf8_alias(info.path, wav_path.parent)
    failpoints.reached("extract:begin")
    cmd = (
        ffmpeg.input(_url(source), **input_options())
        .output(_url(partial), map=f"0:{stream.index}", ac=1, ar=SAMPLE_RATE,
                acodec="pcm_s16le", format="wav", vn=None, sn=None, dn=None)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
    )
    try:
        timeout = extract_timeout(stream.duration or info.duration, info.path.stat().st_size)
        done = run_tool(cmd.compile(cmd=ffmpeg_binary()), info.path, timeout, "ffmpeg (extracting the audio)")
        detail = done.stderr.decode("utf-8", "replace")
        _check_written(detail, partial)
        if done.returncode != 0:
            raise _not_media(info.path, detail)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    failpoints.reached("extract:written")
    atomic.publish(partial, wav_path)
    decoded = wav_duration(wav_path)
    # Compare with the audio stream's own length: a video track may run on after the sound ends.
    expected = stream.duration or info.duration
    return ExtractedAudio(
        wav_path=wav_path,
        stream=stream,
        container_duration=info.duration,
        expected_duration=expected,
        decoded_duration=decoded,
        truncated=is_short_decode(decoded, expected),
    )


def _check_written(stderr: str, wav: Path) -> None:
    """A failed write of the WAV is the machine's fault, not the video's: raise it as the OSError it is.

    ffmpeg exits 0 when the disk fills up while it writes (it reports "Error writing trailer ... No
    space left on device" and leaves a short WAV), so its messages are read even on success.
    """
    if "No space left on device" in stderr:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(wav))
    if re.search(r"Error (writing|closing file)", stderr):
        raise OSError(errno.EIO, f"ffmpeg could not write the audio ({stderr.strip()[-300:]})", str(wav))


def _utf8_alias(path: Path, folder: Path) -> Path:
    """ffmpeg-python hashes its arguments as UTF-8, so a name with undecodable bytes gets a symlink
    beside the derived files (the original is not copied or touched)."""
    try:
        str(path).encode("utf-8")
        return path
    except UnicodeEncodeError:
        alias = folder / f"source{path.suffix.encode('ascii', 'ignore').decode() or '.bin'}"
        alias.unlink(missing_ok=True)
        alias.symlink_to(path.resolve())
        return alias


def is_short_decode(decoded: float, container: float | None) -> bool:
    if container is None:
        return False
    return container - decoded > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_RATIO * container)


def wav_duration(path: str | Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def load_wav(path: str | Path) -> np.ndarray:
    """16-bit PCM WAV as float32 in [-1, 1], the form Whisper takes."""
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16 kHz mono, got {wav.getframerate()} Hz "
                             f"x{wav.getnchannels()}")
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0

