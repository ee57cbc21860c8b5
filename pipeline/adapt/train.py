"""Fine-tuning an openai-whisper checkpoint on checked pairs: seeded, byte-reproducible, resumable.

What is trained: the decoder, fully; the encoder stays as it is (see the note on why: on this CPU the
frozen encoder's output is computed once per segment, so an epoch costs decoder passes only, and the
text side is where names and spellings are learned). No dropout exists in Whisper, the order of each
epoch is drawn from (seed, epoch) alone, deterministic algorithms are on and, on CPU, one thread
reduces in one order: the same seed and data give the same bytes, whether or not the run was killed
and resumed, because everything the next epoch depends on (decoder weights, optimiser state, the
epoch reached) is in the checkpoint written atomically after each epoch.
"""

from __future__ import annotations

import io
import os
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import whisper
from whisper.audio import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper.tokenizer import get_tokenizer

from pipeline import atomic, failpoints
from pipeline.adapt.pairs import Pair

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"
IGNORE = -100


@dataclass(frozen=True)
class Settings:
    """Every setting that shapes the weights; all of it goes into the run id and the model's record."""

    whisper_token: str
    epochs: int = 3
    seed: int = 0
    learning_rate: float = 1e-5
    batch_size: int = 4
    held_out: float = 0.2
    method: str = "decoder"  # full fine-tune of the decoder; the encoder frozen
    device: str = "cpu"
    threads: int = 1  # on CPU: one reduction order, so the bytes do not depend on the core count


@contextmanager
def deterministic(settings: Settings) -> Iterator[None]:
    """Seeded torch with deterministic kernels (and one CPU thread) for the block, restored afterwards."""
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if settings.device.startswith("cuda"):  # cuBLAS is deterministic only with a fixed workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    if settings.device == "cpu":
        torch.set_num_threads(settings.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(strict)


def tokens(tokenizer, text: str, limit: int) -> list[int]:
    """The decoder's target: the no-timestamps prompt, the text, end of text; cut to the context."""
    seq = list(tokenizer.sot_sequence_including_notimestamps) + tokenizer.encode(" " + text.strip())
    return seq[:limit - 1] + [tokenizer.eot]


def features(model: whisper.Whisper, pairs: list[Pair]) -> list[torch.Tensor]:
    """The frozen encoder's output for each pair, computed once: an epoch then costs decoder passes only."""
    out = []
    with torch.no_grad():
        for pair in pairs:
            mel = log_mel_spectrogram(pad_or_trim(torch.from_numpy(pair.audio), N_SAMPLES), model.dims.n_mels)
            out.append(model.encoder(mel[None].to(model.device))[0])
    return out


def _batch(seqs: list[list[int]], prefix: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) padded to the longest; the prompt's own tokens and the padding are not scored."""
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), width), pad, dtype=torch.long)
    targets = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for row, seq in enumerate(seqs):
        inputs[row, :len(seq) - 1] = torch.tensor(seq[:-1])
        targets[row, prefix - 1:len(seq) - 1] = torch.tensor(seq[prefix:])
    return inputs, targets


def epoch_order(seed: int, epoch: int, count: int) -> list[int]:
    """The order of one epoch, from (seed, epoch) alone: a resumed run draws the same."""
    return random.Random(f"{seed}:{epoch}").sample(range(count), count)


class Progress:
    """One line per step on stderr: epoch, step, loss and the time left, from the steps done so far."""

    def __init__(self, total: int, write: Callable[[str], None] | None = None) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))

    def step(self, epoch: int, epochs: int, loss: float) -> None:
        self.done += 1
        left = (time.monotonic() - self.started) / self.done * (self.total - self.done)
        self.write(f"  epoch {epoch}/{epochs}  step {self.done}/{self.total}  loss {loss:.4f}  "
                   f"about {_clock(left)} left")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _save(obj: dict, path: Path) -> None:
    """torch.save into memory, then one atomic rename: a kill leaves the old file or the new, never half."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic.replacing(path, binary=True) as f:
        f.write(buffer.getvalue())


def _resume(run_dir: Path, model: whisper.Whisper, optimizer: torch.optim.Optimizer) -> tuple[int, list[float]]:
    """(epochs done, their losses) from the run's checkpoint, its state loaded; (0, []) for a new run."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return 0, []
    state = torch.load(path, map_location=model.device, weights_only=True)
    model.decoder.load_state_dict(state["decoder"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), list(state["losses"])


def train(base: Path, pairs: list[Pair], settings: Settings, run_dir: Path,
          progress: Progress | None = None) -> tuple[Path, list[float]]:
    """Fine-tune `base` on `pairs` into `run_dir/model.pt`; (its path, mean loss per epoch).

    A checkpoint in `run_dir` from a killed run of the same settings and data is taken up where it stopped.
    """
    from pipeline.store.ct2_to_openai import load_converted

    run_dir.mkdir(parents=True, exist_ok=True)
    with deterministic(settings):
        model = load_converted(base, device=settings.device)
        model.encoder.requires_grad_(False)
        optimizer = torch.optim.AdamW(model.decoder.parameters(), lr=settings.learning_rate)
        done, losses = _resume(run_dir, model, optimizer)
        audio = features(model, pairs)
        tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                                  language=settings.whisper_token, task="transcribe")
        seqs = [tokens(tokenizer, p.text, model.dims.n_text_ctx) for p in pairs]
        steps = -(-len(pairs) // settings.batch_size)
        progress = progress or Progress(0)
        progress.total = steps * (settings.epochs - done)
        for epoch in range(done, settings.epochs):
            losses.append(_epoch(model, optimizer, tokenizer, audio, seqs, settings, epoch, progress))
            _save({"epoch": epoch + 1, "losses": losses, "decoder": model.decoder.state_dict(),
                   "optimizer": optimizer.state_dict()}, run_dir / CHECKPOINT)
            failpoints.reached("adapt:epoch", epoch + 1)
        return _write_weights(model, base, run_dir / WEIGHTS), losses


def _epoch(model, optimizer, tokenizer, audio, seqs, settings: Settings, epoch: int, progress: Progress) -> float:
    """One pass over the pairs in this epoch's order; the mean loss."""
    model.train()
    prefix = len(tokenizer.sot_sequence_including_notimestamps)
    order, total = epoch_order(settings.seed, epoch, len(seqs)), []
    for at in range(0, len(order), settings.batch_size):
        chosen = order[at:at + settings.batch_size]
        inputs, targets = _batch([seqs[i] for i in chosen], prefix, tokenizer.eot)
        features_ = torch.stack([audio[i] for i in chosen])
        logits = model.decoder(inputs.to(model.device), features_)
        loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets.to(model.device),
                                                 ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total.append(loss.item())
        progress.step(epoch + 1, settings.epochs, total[-1])
    model.eval()
    return sum(total) / len(total)


def _write_weights(model: whisper.Whisper, base: Path, path: Path) -> Path:
    """An openai-whisper checkpoint, the base's alignment heads kept, so every loader reads it as the base."""
    checkpoint = {"dims": asdict(model.dims), "model_state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}
    heads = torch.load(base, map_location="cpu", weights_only=True, mmap=True).get("alignment_heads")
    if heads is not None:
        checkpoint["alignment_heads"] = heads
    _save(checkpoint, path)
    return path
