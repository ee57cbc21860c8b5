"""CTC models in the store: recognise a published ONNX export, check it, import it, resolve and load it.

Two export formats, read from their published sources (facts, not code, carried over):
- `omnilingual-ctc`, sherpa-onnx's export of Meta's Omnilingual ASR CTC models (300M, 1B): one input,
  the raw 16 kHz waveform (N, num_samples) normalised to zero mean and unit variance per call, at most
  40 s a call; output `logits` (N, frames, vocab), a frame per 320 samples; blank is token 0.
- `gigaam-ctc`, GigaAM's ONNX export: inputs `features` (B, 64, T), log-mel frames of 10 ms, and
  their lengths; output `log_probs` (B, T/4, vocab), a frame per 40 ms; blank is `<blk>`, the last token.
Both come with `tokens.txt`: `TOKEN ID` a line, a line with the id alone standing for the space.

A folder that is neither, or whose vocabulary does not match the model's output, is refused at
import with the file named, so a broken export never reaches a run. The store keeps a copy under
`ctc/NAME/` with a record of every file's SHA-256 (`registry.write_record`), checked before a load.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import config
from pipeline.errors import ModelMissingError
from pipeline.hashing import file_sha256
from pipeline.store import registry as model_registry
from pipeline.store.record import ModelRecord

TOKENS = "tokens.txt"
SAMPLE_RATE = 16000
GIGAAM_MELS = 64
FRAME_SECONDS = {"omnilingual-ctc": 320 / SAMPLE_RATE, "gigaam-ctc": 4 * 160 / SAMPLE_RATE}
MAX_CALL_SECONDS = {"omnilingual-ctc": 40.0, "gigaam-ctc": 30.0}  # Omnilingual's limit; GigaAM's short form
BLANKS = ("<blk>", "<blank>")
THREADS = 1  # onnxruntime threads: one, so the same input gives the same bytes (bench/ctc.py may measure more)


def ctc_dir() -> Path:
    return config.models_dir() / "ctc"


@dataclass(frozen=True)
class CtcExport:
    """What a run needs to know about one export, read from its files."""

    format: str  # "omnilingual-ctc" or "gigaam-ctc"
    onnx: Path
    tokens: list[str]
    blank: int

    @property
    def frame_seconds(self) -> float:
        return FRAME_SECONDS[self.format]


def onnx_file(folder: Path) -> Path:
    """The export's model file: `model.int8.onnx` (sherpa-onnx's name), `model.onnx`, or the only `.onnx`."""
    for name in ("model.int8.onnx", "model.onnx"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.onnx"))
    if len(found) != 1:
        raise ModelMissingError(f"{folder}: expected one .onnx model file (model.int8.onnx or model.onnx), "
                                f"found {len(found)}")
    return found[0]


def is_ctc_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / TOKENS).is_file() and any(folder.glob("*.onnx"))


def read_tokens(path: Path) -> list[str]:
    """The vocabulary in id order; ids must run 0..n-1 (else the output columns mean nothing)."""
    by_id: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        token, index = (" ", fields[0]) if len(fields) == 1 else (fields[0], fields[-1])
        if not index.isdigit() or int(index) in by_id:
            raise ModelMissingError(f"{path}:{number}: expected `TOKEN ID` with a new integer id, got {line!r}")
        by_id[int(index)] = token
    if sorted(by_id) != list(range(len(by_id))) or not by_id:
        raise ModelMissingError(f"{path}: token ids must run from 0 to {len(by_id) - 1} without gaps")
    return [by_id[i] for i in range(len(by_id))]


def session(path: Path) -> Any:
    """One onnxruntime session, single-threaded and sequential: the same bytes in give the same bytes out."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # an unused length input is normal for these exports
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        raise ModelMissingError(f"{path} could not be loaded by onnxruntime ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def export_format(path: Path, loaded: Any) -> str:
    """Which export `loaded` is, judged by its inputs; anything else is refused naming the file."""
    inputs = loaded.get_inputs()
    floats = [i for i in inputs if i.type == "tensor(float)"]
    if len(inputs) == 1 and len(floats) == 1 and len(floats[0].shape) == 2:
        return "omnilingual-ctc"
    if len(floats) == 1 and len(floats[0].shape) == 3 and floats[0].shape[1] == GIGAAM_MELS:
        return "gigaam-ctc"
    shapes = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
    raise ModelMissingError(
        f"{path}: inputs ({shapes}) are neither a 16 kHz waveform (N, num_samples), as the Omnilingual "
        f"CTC exports take, nor log-mel features (B, {GIGAAM_MELS}, T), as GigaAM's take: not a CTC "
        "export this store can run")


def inspect(folder: Path, loaded: Any | None = None) -> CtcExport:
    """Read and check an export folder: its format, its vocabulary, and that the two agree."""
    path = onnx_file(folder)
    loaded = loaded or session(path)
    fmt = export_format(path, loaded)
    tokens = read_tokens(folder / TOKENS)
    width = probe(loaded, fmt).shape[-1]
    if width != len(tokens):
        raise ModelMissingError(
            f"{folder / TOKENS}: {len(tokens)} tokens, but {path.name} scores {width} per frame: the "
            "vocabulary is not this model's (copy the tokens.txt published with it)")
    blank = next((tokens.index(b) for b in BLANKS if b in tokens), None)
    blank = (len(tokens) - 1 if fmt == "gigaam-ctc" else 0) if blank is None else blank
    return CtcExport(fmt, path, tokens, blank)


def probe(loaded: Any, fmt: str) -> np.ndarray:
    """The model's scores for one second of silence: proves it runs and gives the output width."""
    from pipeline.asr.ctc_features import model_inputs

    return run(loaded, fmt, np.zeros(SAMPLE_RATE, dtype=np.float32), model_inputs)


def run(loaded: Any, fmt: str, audio: np.ndarray, inputs: Any) -> np.ndarray:
    """Frame scores (frames, vocab) of one call on `audio` (16 kHz mono float32)."""
    feed = inputs(fmt, audio, [i.name for i in loaded.get_inputs()])
    return loaded.run([loaded.get_outputs()[0].name], feed)[0][0]


def import_ctc(folder: Path, name: str, origin: str, licence: str, languages: list[str]) -> Path:
    """Check `folder`, copy it into the store as `ctc/NAME/` and record every file's SHA-256."""
    export = inspect(folder)
    store = ctc_dir()
    store.mkdir(parents=True, exist_ok=True)
    target, staging = store / name, store / f".importing-{os.getpid()}-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        for item in sorted(folder.iterdir()):  # the model, its tokens, external weights, the card
            if item.is_file() and not item.name.endswith(".json"):
                shutil.copyfile(item, staging / item.name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    model_registry.write_record(target, name=name, origin=origin, licence=licence, languages=languages,
                                engine="ctc", format=export.format, model_file=export.onnx.name)
    forget_loaded(target)
    return target


def resolve_ctc(name_or_path: str) -> ModelRecord:
    """The record of a CTC model named in the store, or of an export folder given by path."""
    as_path = Path(name_or_path).expanduser()
    if os.sep in name_or_path or as_path.is_dir():
        if not is_ctc_folder(as_path):
            raise ModelMissingError(f"{as_path}: not a CTC export folder (a .onnx model and {TOKENS})")
        model = onnx_file(as_path)
        return ModelRecord(as_path.name, as_path.resolve(), file_sha256(model), f"CTC export folder {as_path}")
    folder = ctc_dir() / name_or_path
    record = model_registry.read_record(folder) if folder.is_dir() else None
    if not record:
        raise ModelMissingError(missing_message(name_or_path))
    model = folder / record.get("model_file", onnx_file(folder).name)
    return ModelRecord(record.get("name", name_or_path), folder, record["files"][model.name],
                       record.get("origin", "unknown"), record.get("licence", ""))


def missing_message(name: str) -> str:
    """What to run when the CTC model `name` is not in the store: install it if the manifest knows it."""
    known = model_registry.known_models().get(name)
    fix = (f"`testimony models install {name}`" if known else
           f"`testimony models import PATH/TO/EXPORT --name {name} --language LANG` (a folder with the "
           f".onnx model and {TOKENS})")
    return f"CTC model '{name}' is not in the model store ({ctc_dir()}): {fix}"


_loaded: dict[str, tuple[Any, CtcExport]] = {}
_lock = threading.Lock()


def load_ctc(record: ModelRecord) -> tuple[Any, CtcExport]:
    """The session and export of `record`, once per process and model bytes (a re-import under the same
    name in another process is loaded anew); files re-hashed against their record first."""
    key = f"{record.path}\0{record.sha256}"
    with _lock:
        if key not in _loaded:
            stored = model_registry.read_record(record.path) or {}
            expected = stored.get("files") or {onnx_file(record.path).name: record.sha256}
            model_registry.check_before_load(record.path, expected, record.name)
            loaded = session(onnx_file(record.path))
            _loaded[key] = (loaded, inspect(record.path, loaded))
    return _loaded[key]


def forget_loaded(folder: Path) -> None:
    with _lock:
        for key in [k for k in _loaded if k.split("\0")[0] == str(folder)]:
            del _loaded[key]
