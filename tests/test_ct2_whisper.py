"""CTranslate2 -> openai-whisper conversion, checked by numbers against the CTranslate2 runtime.

The tiny tests build a random openai-whisper model, write it as a CTranslate2 WhisperSpec
(the runtime is the ground truth for what the CT2 names mean), convert it back and compare
encoder outputs, logits and greedy tokens. The slow test converts the packaged Whisper base
and measures WER on the LibriVox clips that ship with pocketsphinx.
"""

from __future__ import annotations

import base64
import gzip
import struct
import time
import wave
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper
from whisper.tokenizer import get_tokenizer

from pipeline.store.ct2_to_openai import (
    convert_ct2_whisper,
    encode_alignment_heads,
    load_converted,
    packaged_base_parts,
    read_ct2_model,
)

from .tiny_models.whisper import TINY, TINY_HEADS, random_whisper, write_ct2

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random tiny model, its CTranslate2 float16 copy and that copy converted back."""
    root = tmp_path_factory.mktemp("tiny_ct2")
    model = random_whisper(seed=7)
    ct2_dir = write_ct2(model, root / "ct2", quantization="float16")
    heads = encode_alignment_heads(TINY_HEADS, TINY.n_text_layer, TINY.n_text_head)
    converted = convert_ct2_whisper(ct2_dir / "model.bin", root / "tiny.pt", alignment_heads=heads)
    return model, ct2_dir, converted


def _mel(seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal(16000 * 5) * 0.1).astype(np.float32)  # 5 s of noise
    return whisper.log_mel_spectrogram(whisper.pad_or_trim(audio))[None]  # [1, 80, 3000]


def _greedy(model: Whisper, mel: torch.Tensor, prompt: list[int], steps: int) -> list[int]:
    eot = get_tokenizer(multilingual=True).eot
    tokens = list(prompt)
    with torch.no_grad():
        audio = model.embed_audio(mel)
        for _ in range(steps):
            nxt = int(model.logits(torch.tensor([tokens]), audio)[0, -1].argmax())
            if nxt == eot:
                break
            tokens.append(nxt)
    return tokens[len(prompt):]


def test_tiny_float16_is_lossless_and_matches_ctranslate2(tiny):
    model, ct2_dir, converted = tiny
    checkpoint = torch.load(converted, weights_only=True)
    assert checkpoint["dims"] == TINY.__dict__
    state = checkpoint["model_state_dict"]
    reference = model.state_dict()
    assert set(state) == set(reference)
    for key, value in state.items():  # float16 in CT2 -> float16 here, bit for bit
        assert value.dtype == torch.float16, key
        assert torch.equal(value, reference[key].half()), key

    _, meta = read_ct2_model(ct2_dir / "model.bin")
    assert meta["aliases"]["decoder/projection/weight"] == "decoder/embeddings/weight"
    assert "encoder/layer_1/self_attention/layer_norm/gamma" in meta["aliases"]
    assert meta["config"]["alignment_heads"] == [list(p) for p in TINY_HEADS]

    ours = load_converted(converted)
    assert ours.alignment_heads.to_dense().nonzero().tolist() == [list(p) for p in TINY_HEADS]
    runtime = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    mel = _mel()
    features = ctranslate2.StorageView.from_array(mel.numpy())
    with torch.no_grad():
        audio = ours.embed_audio(mel)
    ct2_audio = np.array(runtime.encode(features, to_cpu=True))
    np.testing.assert_allclose(audio.numpy(), ct2_audio, rtol=1e-3, atol=1e-3)

    tok = get_tokenizer(multilingual=True, language="en", task="transcribe")
    prompt = list(tok.sot_sequence_including_notimestamps)
    result = runtime.generate(features, [prompt], beam_size=1, max_length=20, suppress_blank=False,
                              suppress_tokens=[], return_logits_vocab=True)[0]
    ct2_tokens = result.sequences_ids[0]
    assert len(ct2_tokens) >= 5, "random model stopped too early to compare anything"
    assert _greedy(ours, mel, prompt, steps=len(ct2_tokens)) == ct2_tokens
    # every generated step's logits, from one teacher-forced pass of the converted model
    with torch.no_grad():
        logits = ours.logits(torch.tensor([prompt + ct2_tokens]), audio)[0].numpy()
    steps = logits[len(prompt) - 1:len(prompt) - 1 + len(ct2_tokens)]
    np.testing.assert_allclose(steps, np.array([np.array(x) for x in result.logits[0]]),
                               rtol=1e-3, atol=2e-3)


def test_tiny_int8_is_dequantized_like_the_runtime(tmp_path):
    model = random_whisper(seed=11)
    ct2_dir = write_ct2(model, tmp_path / "ct2", quantization="int8")
    variables, _ = read_ct2_model(ct2_dir)  # a model directory is accepted too
    assert not any(name.endswith("_scale") for name in variables)
    ours = load_converted(convert_ct2_whisper(ct2_dir, tmp_path / "int8.pt"))
    assert ours.encoder.conv1.weight.dtype == torch.float32
    runtime = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    mel = _mel(1)
    with torch.no_grad():
        audio = ours.embed_audio(mel).numpy()
    features = ctranslate2.StorageView.from_array(mel.numpy())
    ct2_audio = np.array(runtime.encode(features, to_cpu=True))
    np.testing.assert_allclose(audio, ct2_audio, rtol=1e-3, atol=1e-3)


def test_split_parts_read_as_one_stream(tiny, tmp_path):
    _, ct2_dir, _ = tiny
    blob = (ct2_dir / "model.bin").read_bytes()
    cuts = [len(blob) // 3, len(blob) // 3 + 1, 2 * len(blob) // 3]  # includes a 1-byte part
    parts = []
    for i, (a, b) in enumerate(zip([0] + cuts, cuts + [len(blob)])):
        parts.append(tmp_path / f"model.bin.part{i}")
        parts[-1].write_bytes(blob[a:b])
    whole, _ = read_ct2_model(ct2_dir / "model.bin")
    split, _ = read_ct2_model(parts)
    assert whole.keys() == split.keys()
    assert all(np.array_equal(whole[k], split[k]) for k in whole)
    # parts in the wrong order: the header is garbage (the format has no checksum, so a swap
    # inside the weight data would go unnoticed; keep parts in the order they were cut)
    with pytest.raises(ValueError, match=r"model\.bin\.part3 \+ .*CTranslate2 Whisper"):
        read_ct2_model(parts[::-1])
    with pytest.raises(ValueError, match="trailing bytes"):
        read_ct2_model(parts + [parts[1]])


def test_not_a_whisper_model_names_the_file(tiny, tmp_path):
    _, ct2_dir, _ = tiny
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 definitely not a model")
    with pytest.raises(ValueError, match=r"junk\.bin.*CTranslate2 Whisper"):
        read_ct2_model(junk)
    other = tmp_path / "transformer.bin"
    name = b"TransformerSpec\x00"
    other.write_bytes(struct.pack("<IH", 6, len(name)) + name + struct.pack("<II", 1, 0))
    with pytest.raises(ValueError, match=r"transformer\.bin.*WhisperSpec.*TransformerSpec"):
        convert_ct2_whisper(other, tmp_path / "out.pt")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes((ct2_dir / "model.bin").read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"truncated\.bin"):
        convert_ct2_whisper(truncated, tmp_path / "out.pt")
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob(".*tmp"))


def test_nonzero_key_bias_is_refused(tmp_path):
    model = random_whisper(seed=3)
    ct2_dir = write_ct2(model, tmp_path / "ct2", quantization=None)
    variables, _ = read_ct2_model(ct2_dir)
    bias = variables["encoder/layer_0/self_attention/linear_0/bias"]
    assert not bias[TINY.n_audio_state:2 * TINY.n_audio_state].any()  # the key third is zero
    spec_bytes = (ct2_dir / "model.bin").read_bytes()
    # find that bias in the file and poke a non-zero key element into it
    start = spec_bytes.index(bias.tobytes()) + (TINY.n_audio_state + 1) * 4
    poked = tmp_path / "poked.bin"
    poked.write_bytes(spec_bytes[:start] + struct.pack("<f", 0.5) + spec_bytes[start + 4:])
    with pytest.raises(ValueError, match="key"):
        convert_ct2_whisper(poked, tmp_path / "out.pt")


def test_write_is_atomic(tiny, tmp_path, monkeypatch):
    _, ct2_dir, _ = tiny
    out = tmp_path / "model.pt"
    out.write_bytes(b"previous good checkpoint")

    def exploding_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        convert_ct2_whisper(ct2_dir, out)
    assert out.read_bytes() == b"previous good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    monkeypatch.undo()
    convert_ct2_whisper(ct2_dir, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert whisper.load_model(str(out)).dims == TINY  # plain load_model ignores our extra key


# ---------------------------------------------------------------- real Whisper base weights

def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


@pytest.mark.slow
def test_base_state_dict_matches_openai_layout(converted_base):
    checkpoint = torch.load(converted_base, weights_only=True)
    dims = ModelDimensions(**checkpoint["dims"])
    assert dims == ModelDimensions(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
    expected = {k: tuple(v.shape) for k, v in Whisper(dims).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in checkpoint["model_state_dict"].items()} == expected
    assert {v.dtype for v in checkpoint["model_state_dict"].values()} == {torch.float16}
    # openai's heads for base are the ones the CTranslate2 config.json lists
    _, meta = read_ct2_model(packaged_base_parts())
    ours = encode_alignment_heads(meta["config"]["alignment_heads"], 6, 8)
    assert _mask(ours) == _mask(checkpoint["alignment_heads"])
    assert _mask(ours) == _mask(whisper._ALIGNMENT_HEADS["base"])


def _mask(dump: bytes) -> bytes:
    return gzip.decompress(base64.b85decode(dump))


@pytest.mark.slow
def test_base_matches_ctranslate2_runtime(converted_base):
    """Same encoder output and same greedy tokens as faster-whisper's runtime on real speech."""
    clip = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent (Debian package pocketsphinx-testdata)")
    parts = packaged_base_parts()
    data = parts[0].parent
    files = {"model.bin": b"".join(p.read_bytes() for p in parts),  # joined in memory only
             "vocabulary.txt": (data / "vocabulary.txt").read_bytes(),
             "config.json": (data / "config.json").read_bytes()}
    runtime = ctranslate2.models.Whisper("whisper-base", compute_type="float32", files=files)
    model = load_converted(converted_base)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(_read_wav(clip)))[None]
    features = ctranslate2.StorageView.from_array(mel.numpy())
    with torch.no_grad():
        audio = model.embed_audio(mel).numpy()
    np.testing.assert_allclose(audio, np.array(runtime.encode(features, to_cpu=True)),
                               rtol=1e-3, atol=2e-3)
    tok = get_tokenizer(multilingual=True, language="en", task="transcribe")
    ct2 = runtime.generate(features, [list(tok.sot_sequence_including_notimestamps)], beam_size=1)
    ours = whisper.decode(model, mel[0], whisper.DecodingOptions(
        language="en", without_timestamps=True, fp16=False))
    assert ct2[0].sequences_ids[0] == ours.tokens
    assert len(ours.tokens) > 20


@pytest.mark.slow
def test_base_librivox_wer(converted_base):
    if not (LIBRIVOX / "transcription").is_file():
        pytest.skip(f"{LIBRIVOX} is absent (Debian package pocketsphinx-testdata)")
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    from pipeline.evaluation.devset import librivox

    refs = {ident: text for ident, _, text in librivox()}
    model = load_converted(converted_base)
    normalize = EnglishTextNormalizer()
    truth, hyps = [], []
    start = time.perf_counter()
    for fileid, ref in sorted(refs.items()):
        audio = _read_wav(LIBRIVOX / f"{fileid}.wav")
        result = whisper.transcribe(model, audio, language="en", fp16=False, temperature=0.0)
        truth.append(normalize(ref))
        hyps.append(normalize(result["text"]))
        print(f"{fileid}: {hyps[-1]!r}")
    wer = jiwer.wer(truth, hyps)
    print(f"converted base: corpus WER {wer:.2%} on {len(refs)} LibriVox clips "
          f"({time.perf_counter() - start:.1f} s)")
    assert len(refs) == 5
    assert wer <= 0.05
