"""Timed training of the GNMT model on synthetic tokens: throughput at a preset's size.

    python -m scripts.gnmt.speed --preset reference --device cuda --amp --seconds 60

Builds the model of ``--preset`` (scripts/gnmt/train.py PRESETS) with a ``--vocab``-sized
vocabulary on each side, then trains it on random token batches of ``--batch-size`` sentences
of ``--seq-len`` tokens (source and target) for ``--seconds`` after ``--warmup-steps`` untimed
steps, with the trainer's own step (train.Trainer: the same loss, clipping, Adam and AMP).
It prints one line, ``timed: ... tokens/s ...``, that bench/gpu_check.sh reads. No data, no
MLPerf log: it measures the hardware at reference size, not time to a quality target.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from torch import nn

from scripts.gnmt import train
from scripts.gnmt.model import GNMT, PAD
from scripts.gnmt.train import PRESETS, Trainer, model_config, pick_device


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="reference", help="model size")
    p.add_argument("--vocab", type=int, default=32000, help="tokens per side (WMT16 BPE: 32k)")
    p.add_argument("--batch-size", type=int, default=None, help="sentences (default: preset's)")
    p.add_argument("--seq-len", type=int, default=32, help="tokens per sentence, each side")
    p.add_argument("--seconds", type=float, default=60.0, help="timed training time")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--amp", action="store_true", help="float16 (cuda) / bfloat16 (CPU) autocast")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    gpus = 1 if args.device == "auto" and torch.cuda.is_available() else 0
    args.device = str(pick_device(args.device, gpus))
    if args.vocab <= PAD + 4 or args.seq_len < 1 or args.seconds <= 0:
        p.error("--vocab must be > 4, --seq-len >= 1 and --seconds > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    preset = train.parse_args(  # the trainer's values of the preset (no data is read)
        ["--data-dir", ".", "--seed", "0", "--target-bleu", "0", "--preset", args.preset]
    )
    batch = args.batch_size or preset.batch_size
    device = torch.device(args.device)
    model = GNMT(model_config(preset, args.vocab, args.vocab), init_range=preset.init_range)
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=preset.learning_rate),
        train.grad_scaler(device, args.amp),
        nn.CrossEntropyLoss(ignore_index=PAD),
        device,
        args.amp,
        preset.grad_clip,
    )
    # token ids 4.. (0-3 are pad, bos, eos, unk); every sentence is --seq-len long
    src = torch.randint(4, args.vocab, (batch, args.seq_len))
    tgt = torch.randint(4, args.vocab, (batch, args.seq_len + 1))
    lengths = torch.full((batch,), args.seq_len)
    tokens_per_step = 2 * batch * args.seq_len
    for _ in range(args.warmup_steps):
        trainer.step(src, lengths, tgt[:, :-1], tgt[:, 1:])
    sync(device)
    steps, t0 = 0, time.perf_counter()
    while True:
        loss = trainer.step(src, lengths, tgt[:, :-1], tgt[:, 1:])
        steps += 1
        if steps % 5 == 0 or device.type == "cpu":
            sync(device)
            if time.perf_counter() - t0 >= args.seconds:
                break
    elapsed = time.perf_counter() - t0
    print(
        f"timed: {elapsed:.1f} s, {steps} steps, {steps * tokens_per_step / elapsed:.0f} tokens/s "
        f"(source + target), {elapsed / steps * 1000:.1f} ms/step, loss {float(loss):.2f}; "
        f"preset {args.preset}: hidden {preset.hidden}, {preset.enc_layers}+{preset.dec_layers} "
        f"layers, vocab {args.vocab}, {params / 1e6:.1f}M parameters, batch {batch} x "
        f"{args.seq_len} tokens, {device.type}{' amp' if args.amp else ''}",
        flush=True,
    )
    return 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    raise SystemExit(main())
