"""Tiny RANDOM models in the real formats the store imports: `python -m tests.tiny_models DIR [FORMAT ...]`.

`WRITERS` names every format, each by the path it takes under DIR: the two CTC exports below, an
openai-whisper checkpoint (`whisper.pt`), a CTranslate2 Whisper folder (`whisper-ct2/`), an Argos package
(`translate-kk_en.argosmodel`) a CTranslate2 NLLB-200 folder (`nllb-ct2/`), a
CTranslate2 MADLAD-400 folder (`madlad-ct2/`) and the same MADLAD as a Hugging Face folder (`madlad-hf/`).
Each goes into the store
with `testimony models import PATH` (NLLB and MADLAD with `--language kk`).

The CTC exports are built at test time with the `onnx` helper API (nothing binary is committed, nothing is
downloaded), with the inputs, outputs and token files of the published exports, so the importer,
the CTC engine and anyone checking the plumbing exercise the same formats the real weights have:

- `omnilingual-ctc/`: sherpa-onnx's export of Omnilingual ASR CTC (k2-fsa/sherpa-onnx
  scripts/omnilingual-asr/export-onnx.py): `model.int8.onnx` with one input `x` (N, num_samples),
  the raw 16 kHz waveform normalised to zero mean and unit variance, one output `logits`
  (N, num_frames, vocab_size), a frame per 320 samples (20 ms); metadata `model_type =
  omnilingual-asr`, `vocab_size`, `sample_rate`; `tokens.txt` lines `TOKEN ID`, blank 0, a line with
  the id alone standing for the space.
- `gigaam-ctc/`: GigaAM's ONNX export (ai-sage/GigaAM `onnx_converter`): `model.onnx` with inputs
  `features` (B, 64, T) log-mel and `feature_lengths` (B,), output `log_probs` (B, T/4, vocab_size),
  a frame per 4 feature frames (40 ms); `tokens.txt` lines `TOKEN ID` with `<blk>` last.

The other formats' builders live beside this file (imported only when asked for, so the CTC ones stay
light): `whisper` (openai-whisper checkpoint, CTranslate2 Whisper), `argos` (.argosmodel), `mt` (Hugging
Face Marian, OPUS-MT, NLLB-200, M2M100, and NLLB-200 converted for CTranslate2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LETTERS = "аәбвгғдеёжзийкқлмнңоөпрстуұүфхһцчшщъыіьэюя"
OMNI_STRIDE, OMNI_WINDOW = 320, 400  # samples per output frame, receptive field of one frame
GIGAAM_MELS, GIGAAM_STRIDE = 64, 4  # feature bins, feature frames per output frame


def _graph_model(nodes: list, name: str, inputs: list, outputs: list, weights: dict[str, np.ndarray],
                 metadata: dict[str, str]):
    """An opset-14 model of `nodes` with `weights` as initialisers and `metadata` as properties."""
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(w, k) for k, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="testimony tests.tiny_models")
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def _omni_tokens() -> list[str]:
    """Omnilingual's layout: the four specials first (blank = 0), then characters, space as a bare id."""
    return ["<s>", "<pad>", "</s>", "<unk>", " ", *LETTERS]


def _gigaam_tokens() -> list[str]:
    """GigaAM's layout: space, the letters, and the blank `<blk>` last."""
    return [" ", *LETTERS, "<blk>"]


def write_tokens(path: Path, tokens: list[str]) -> None:
    """`TOKEN ID` a line; the space token is written as its id alone (as sherpa-onnx's exports do)."""
    lines = [f"{i}" if t == " " else f"{t} {i}" for i, t in enumerate(tokens)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _projection(rng: np.random.Generator, width: int, vocab: int, blank: int,
                space: int) -> dict[str, np.ndarray]:
    """Random output weights whose blank and space win often enough to give words between pauses."""
    bias = rng.normal(0, 0.5, vocab).astype(np.float32)
    bias[blank] += 1.5
    bias[space] += 1.0
    return {"proj": rng.normal(0, 1.0, (width, vocab)).astype(np.float32), "bias": bias}


def omnilingual_ctc(folder: Path, seed: int = 0, width: int = 16) -> Path:
    """A tiny Omnilingual-CTC export: strided waveform convolution, then a projection to logits."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    tokens = _omni_tokens()
    weights = {"conv": rng.normal(0, 0.3, (width, 1, OMNI_WINDOW)).astype(np.float32),
               **_projection(rng, width, len(tokens), 0, tokens.index(" "))}
    nodes = [helper.make_node("Unsqueeze", ["x", "axis1"], ["x3"]),
             helper.make_node("Conv", ["x3", "conv"], ["h"], strides=[OMNI_STRIDE]),
             helper.make_node("Tanh", ["h"], ["ht"]),
             helper.make_node("Transpose", ["ht"], ["hT"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["hT", "proj"], ["z"]),
             helper.make_node("Add", ["z", "bias"], ["logits"])]
    weights["axis1"] = np.array([1], dtype=np.int64)
    model = _graph_model(
        nodes, "omnilingual_ctc_tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "num_samples"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "num_frames", len(tokens)])],
        weights, {"model_type": "omnilingual-asr", "vocab_size": str(len(tokens)), "sample_rate": "16000",
                  "version": "1", "comment": "tiny random weights (tests.tiny_models)"})
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.int8.onnx")
    write_tokens(folder / "tokens.txt", tokens)
    return folder


def gigaam_ctc(folder: Path, seed: int = 0, width: int = 16) -> Path:
    """A tiny GigaAM-CTC export: strided convolution over log-mel frames, projection, log-softmax."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    tokens = _gigaam_tokens()
    weights = {"conv": rng.normal(0, 0.05, (width, GIGAAM_MELS, GIGAAM_STRIDE)).astype(np.float32),
               "conv_bias": rng.normal(0, 0.5, width).astype(np.float32),
               **_projection(rng, width, len(tokens), len(tokens) - 1, tokens.index(" "))}
    nodes = [helper.make_node("Conv", ["features", "conv", "conv_bias"], ["h"], strides=[GIGAAM_STRIDE]),
             helper.make_node("Tanh", ["h"], ["ht"]),
             helper.make_node("Transpose", ["ht"], ["hT"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["hT", "proj"], ["z"]),
             helper.make_node("Add", ["z", "bias"], ["logits"]),
             helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=-1)]
    model = _graph_model(
        nodes, "gigaam_ctc_tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", GIGAAM_MELS, "T"]),
         helper.make_tensor_value_info("feature_lengths", TensorProto.INT64, ["B"])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["B", "T_out", len(tokens)])],
        weights, {"model_type": "gigaam-ctc", "comment": "tiny random weights (tests.tiny_models)"})
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    write_tokens(folder / "tokens.txt", tokens)
    return folder


def whisper_checkpoint(path: Path, seed: int = 0) -> Path:
    """An openai-whisper `.pt` (tests.tiny_models.whisper)."""
    from .whisper import openai_whisper_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    return openai_whisper_checkpoint(path, seed)


def whisper_ct2(folder: Path, seed: int = 0) -> Path:
    """A CTranslate2 (faster-whisper) Whisper folder (tests.tiny_models.whisper)."""
    from .whisper import ct2_folder

    return ct2_folder(folder, seed)


def argos_package(path: Path, seed: int = 0) -> Path:
    """A kk -> en `.argosmodel` (tests.tiny_models.argos); its weights follow the language pair, not `seed`."""
    from .argos import build_tiny_argos_package

    path.parent.mkdir(parents=True, exist_ok=True)
    built = build_tiny_argos_package(path.parent, "kk", "en")
    return built if built == path else built.replace(path)


def nllb_ct2(folder: Path, seed: int = 0) -> Path:
    """An NLLB-200 folder as ct2-transformers-converter writes it (tests.tiny_models.mt)."""
    from .mt import build_nllb_ct2

    return build_nllb_ct2(folder, seed)


def madlad_ct2(folder: Path, seed: int = 0) -> Path:
    """A CTranslate2 MADLAD-400 (T5) folder with its SentencePiece model (tests.tiny_models.madlad)."""
    from .madlad import madlad_ct2 as build

    return build(folder, seed)


def madlad_hf(folder: Path, seed: int = 0) -> Path:
    """The same MADLAD-400 as a Hugging Face transformers folder (tests.tiny_models.madlad)."""
    from .madlad import madlad_hf as build

    return build(folder, seed)


# One line per format: the path under DIR -> its writer(path, seed).
WRITERS = {
    "omnilingual-ctc": omnilingual_ctc,
    "gigaam-ctc": gigaam_ctc,
    "whisper.pt": whisper_checkpoint,
    "whisper-ct2": whisper_ct2,
    "translate-kk_en.argosmodel": argos_package,
    "nllb-ct2": nllb_ct2,
    "madlad-ct2": madlad_ct2,
    "madlad-hf": madlad_hf,
}


def write_all(out: Path, seed: int = 0, names: list[str] | None = None) -> dict[str, Path]:
    """The formats named (all by default), each at its own path under `out`."""
    unknown = sorted(set(names or []) - set(WRITERS))
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(WRITERS)}")
    return {name: WRITERS[name](out / name, seed) for name in names or WRITERS}
