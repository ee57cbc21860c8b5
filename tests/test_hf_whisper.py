"""transformers Whisper folder -> openai-whisper checkpoint, checked by numbers against HF.

A tiny random WhisperForConditionalGeneration is built and saved at test time (transformers is
the ground truth for what its names mean), converted, loaded by openai-whisper, and both models
run on the same mel and tokens: encoder outputs and logits must agree to float tolerance.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import WhisperConfig, WhisperForConditionalGeneration
from whisper.tokenizer import get_tokenizer

from pipeline.errors import ModelMissingError
from pipeline.store.ct2_to_openai import load_converted
from pipeline.store.hf_to_openai import convert_hf_whisper, is_hf_whisper_folder

HEADS = [[1, 0], [1, 3], [0, 2]]
TINY = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, num_mel_bins=80,
            max_source_positions=1500, max_target_positions=448, vocab_size=51865)


def _random_hf(seed: int) -> WhisperForConditionalGeneration:
    """Random weights everywhere, layer norms and positions included, so a swapped name cannot
    hide behind an all-ones norm or a zero bias."""
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY))
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if "embed" in name else 0.2
            offset = 1.0 if "layer_norm.weight" in name else 0.0
            p.copy_(torch.randn_like(p) * scale + offset)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    model.generation_config.alignment_heads = HEADS
    return model.eval()


@pytest.fixture(scope="module")
def hf_model() -> WhisperForConditionalGeneration:
    return _random_hf(0)


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "whisper-kk-finetune"
    hf_model.save_pretrained(folder)
    return folder


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    mel = torch.randn(1, 80, 3000)  # transformers' encoder insists on exactly 3000 frames
    sot = get_tokenizer(multilingual=True, num_languages=99, language="kk", task="transcribe")
    tokens = torch.tensor([list(sot.sot_sequence) + [1000, 23456, 220, 51000]])
    return mel, tokens


def _compare(hf: WhisperForConditionalGeneration, checkpoint: Path, atol: float) -> None:
    mel, tokens = _inputs()
    model = load_converted(checkpoint).float().eval()
    with torch.no_grad():
        out = hf(input_features=mel, decoder_input_ids=tokens)
        audio = model.embed_audio(mel)
        logits = model.logits(tokens, audio)
    assert audio.shape == out.encoder_last_hidden_state.shape == (1, 1500, 64)
    torch.testing.assert_close(audio, out.encoder_last_hidden_state, atol=atol, rtol=1e-5)
    assert logits.shape == out.logits.shape == (1, tokens.shape[1], 51865)
    assert out.logits.abs().max() > 1.0  # not a trivially tiny comparison
    torch.testing.assert_close(logits, out.logits, atol=atol, rtol=1e-5)
    assert torch.equal(logits.argmax(-1), out.logits.argmax(-1))


def test_detects_whisper_folders(hf_folder, tmp_path):
    assert is_hf_whisper_folder(hf_folder)
    assert not is_hf_whisper_folder(hf_folder / "config.json")  # a file, not a folder
    assert not is_hf_whisper_folder(tmp_path)  # no config.json
    (tmp_path / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    assert not is_hf_whisper_folder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    assert not is_hf_whisper_folder(tmp_path)


def test_float32_logits_match_transformers(hf_model, hf_folder, tmp_path):
    target = tmp_path / "store" / "kk.pt"
    assert convert_hf_whisper(hf_folder, target) == target
    assert not target.with_name("kk.pt.partial").exists()
    checkpoint = torch.load(target, weights_only=True)
    assert checkpoint["dims"] == dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64,
                                      n_audio_head=4, n_audio_layer=2, n_vocab=51865,
                                      n_text_ctx=448, n_text_state=64, n_text_head=4,
                                      n_text_layer=2)
    assert {t.dtype for t in checkpoint["model_state_dict"].values()} == {torch.float32}
    _compare(hf_model, target, atol=1e-4)


def test_alignment_heads_round_trip(hf_folder, tmp_path):
    target = convert_hf_whisper(hf_folder, tmp_path / "kk.pt")
    dump = torch.load(target, weights_only=True)["alignment_heads"]
    mask = np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool).reshape(2, 4)
    assert sorted(map(list, zip(*np.nonzero(mask)))) == sorted(HEADS)
    heads = load_converted(target).alignment_heads.to_dense()
    assert sorted(map(list, heads.nonzero().tolist())) == sorted(HEADS)


def test_float16_stays_float16_and_matches(tmp_path):
    folder = tmp_path / "fp16"
    _random_hf(2).half().save_pretrained(folder)
    saved = load_file(folder / "model.safetensors")
    checkpoint = torch.load(convert_hf_whisper(folder, tmp_path / "fp16.pt"), weights_only=True)
    state = checkpoint["model_state_dict"]
    assert {t.dtype for t in state.values()} == {torch.float16}
    assert torch.equal(state["decoder.blocks.1.cross_attn.query.weight"],
                       saved["model.decoder.layers.1.encoder_attn.q_proj.weight"])
    assert torch.equal(state["encoder.ln_post.bias"], saved["model.encoder.layer_norm.bias"])
    assert sum(t.numel() for t in state.values()) == sum(
        t.numel() for k, t in saved.items() if not k.endswith("k_proj.bias"))
    # the same float16 values, both run in float32
    hf = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    _compare(hf, tmp_path / "fp16.pt", atol=1e-4)


def test_sharded_and_bin_layouts_give_the_same_checkpoint(hf_model, hf_folder, tmp_path):
    reference = torch.load(convert_hf_whisper(hf_folder, tmp_path / "ref.pt"),
                           weights_only=True)["model_state_dict"]
    sharded = tmp_path / "sharded"
    hf_model.save_pretrained(sharded, max_shard_size="4MB")
    assert (sharded / "model.safetensors.index.json").is_file()
    binary = tmp_path / "bin"
    binary.mkdir()
    shutil.copy(hf_folder / "config.json", binary)
    torch.save(hf_model.state_dict(), binary / "pytorch_model.bin")  # includes tied proj_out
    for folder in (sharded, binary):
        state = torch.load(convert_hf_whisper(folder, tmp_path / f"{folder.name}.pt"),
                           weights_only=True)["model_state_dict"]
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)


def _broken_copy(hf_folder: Path, tmp_path: Path, **config_changes) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(hf_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(config_changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "bert", "architectures": ["BertModel"]}, "not a Whisper model"),
    ({"vocab_size": 51864}, "English-only"),
    ({"vocab_size": 51900}, "changed tokenizer"),
    ({"max_target_positions": 447}, "shapes do not match"),
    ({"encoder_layers": 3}, "weights lack"),
    ({"decoder_layers": 1}, "does not declare"),
    ({"activation_function": "relu"}, "activation_function"),
    ({"max_source_positions": 750}, "30 s windows"),
    ({"d_model": None}, "lacks integer d_model"),
])
def test_refuses_incompatible_models(hf_folder, tmp_path, changes, message):
    folder = _broken_copy(hf_folder, tmp_path, **changes)
    target = tmp_path / "out.pt"
    with pytest.raises(ModelMissingError, match=message) as info:
        convert_hf_whisper(folder, target)
    assert str(folder) in str(info.value)
    assert not target.exists() and not target.with_name("out.pt.partial").exists()


def test_refuses_missing_files(hf_folder, tmp_path):
    with pytest.raises(ModelMissingError, match="no such folder"):
        convert_hf_whisper(tmp_path / "absent", tmp_path / "x.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelMissingError, match="no readable config.json"):
        convert_hf_whisper(empty, tmp_path / "x.pt")
    no_weights = _broken_copy(hf_folder, tmp_path)
    (no_weights / "model.safetensors").unlink()
    (no_weights / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelMissingError, match="no model.safetensors.*LoRA adapter"):
        convert_hf_whisper(no_weights, tmp_path / "x.pt")
    (no_weights / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ModelMissingError, match="model.safetensors is unreadable"):
        convert_hf_whisper(no_weights, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_refuses_untied_output_projection(hf_model, hf_folder, tmp_path):
    folder = _broken_copy(hf_folder, tmp_path)
    (folder / "model.safetensors").unlink()
    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state["proj_out.weight"] += 1.0
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelMissingError, match="proj_out is not tied"):
        convert_hf_whisper(folder, tmp_path / "x.pt")


def test_imported_through_the_cli_and_routed_for_uyghur(hf_folder, tmp_path, capsys):
    """The form fine-tuned Uyghur models are published in, brought in with `models import` alone."""
    from pipeline import config
    from pipeline.cli.main import main
    from pipeline.store import routes

    (hf_folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a fine-tune\n", encoding="utf-8")
    assert main(["models", "import", str(hf_folder), "--language", "ug", "--whisper-token", "uz"]) == 0
    assert "route ug -> whisper-kk-finetune (decoding with 'uz')" in capsys.readouterr().out
    record = json.loads((config.whisper_dir() / "whisper-kk-finetune.pt.json").read_text(encoding="utf-8"))
    assert record["licence"] == "apache-2.0" and record["whisper_token"] == "uz"
    assert routes.resolve_asr("ug", None, None) == ("whisper-kk-finetune", "uz")
    assert main(["models", "verify"]) == 0
