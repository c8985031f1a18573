"""Train the embedded GNMT-shaped model to a BLEU target, logging MLPerf events (mllog).

One invocation is one MLPerf-style run: initialise, ``run_start``, then epochs of training each
followed by an evaluation (corpus BLEU from sacrebleu on the held-out set), until the target is
met (``run_stop`` status ``success``) or ``--max-epochs`` have passed (status ``aborted``, i.e.
the run did not converge, which is a result and not a crash: the exit code is 0 either way).

The MLPerf events go to stdout as ``:::MLLOG {json}`` lines, together with human-readable
progress lines; the workflow keeps the whole stream as the run's ``mlperf.log``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import sacrebleu
import torch
from mlperf_logging import mllog
from mlperf_logging.mllog import constants as C
from torch import nn

from scripts.gnmt.model import BOS, EOS, GNMT, PAD, UNK, GNMTConfig

SCALE_LABEL = "embedded-toy (synthetic corpus, CPU scale; not an MLPerf result)"


class Vocab:
    def __init__(self, sentences: Sequence[str]) -> None:
        words = sorted({w for s in sentences for w in s.split()})
        self.itos = ["<pad>", "<s>", "</s>", "<unk>", *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: str) -> list[int]:
        return [self.stoi.get(w, UNK) for w in sentence.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.itos[i] for i in ids if i not in (PAD, BOS, EOS))


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SystemExit(f"error: corpus file {path} is missing (is --data-dir right?)") from None


def pad(seqs: Sequence[list[int]]) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [PAD] * (width - len(s)) for s in seqs], dtype=torch.long)


def batches(
    pairs: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Shuffled batches of similar source length (bucketing, as NVIDIA's GNMT does)."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]), rng.random()))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    for chunk in chunks:
        src = [pairs[i][0] for i in chunk]
        tgt = [pairs[i][1] for i in chunk]
        tgt_in = pad([[BOS, *t] for t in tgt])
        tgt_out = pad([[*t, EOS] for t in tgt])
        yield pad(src), torch.tensor([len(s) for s in src]), tgt_in, tgt_out


def evaluate(model: GNMT, src_ids: list[list[int]], refs: list[str], tgt_vocab: Vocab) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a tokenisation) of greedy translations."""
    model.eval()
    hyps: list[str] = []
    for i in range(0, len(src_ids), 256):
        chunk = src_ids[i : i + 256]
        lengths = torch.tensor([len(s) for s in chunk])
        out = model.greedy_decode(pad(chunk), lengths, max_len=int(lengths.max()) * 2 + 2)
        hyps.extend(tgt_vocab.decode(row) for row in out.tolist())
    model.train()
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def _stdout_logger() -> logging.Logger:
    """A logger that prints MLPerf lines to the *current* stdout (mllog's default handler keeps
    the stdout of import time)."""
    logger = logging.getLogger("mlperf_workflow.mllog")
    logger.handlers[:] = [logging.StreamHandler(sys.stdout)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder with train/dev .en/.de")
    p.add_argument("--seed", type=int, required=True, help="seed of this run (logged)")
    p.add_argument("--target-bleu", type=float, required=True, help="quality target (BLEU)")
    p.add_argument("--max-epochs", type=int, default=12, help="stop as not converged after this")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per step")
    p.add_argument("--learning-rate", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--hidden", type=int, default=128, help="LSTM and embedding width")
    p.add_argument("--enc-layers", type=int, default=3, help="encoder LSTM layers (>= 2)")
    p.add_argument("--dec-layers", type=int, default=3, help="decoder LSTM layers (>= 1)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout probability")
    p.add_argument("--init-range", type=float, default=0.1, help="uniform init range of weights")
    p.add_argument("--grad-clip", type=float, default=5.0, help="max gradient norm")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--platform", default=socket.gethostname(), help="submission_platform value")
    args = p.parse_args(argv)
    if args.enc_layers < 2 or args.dec_layers < 1:
        p.error("--enc-layers must be >= 2 and --dec-layers >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = mllog.get_mllogger()
    logger = _stdout_logger()
    if log.logger is not logger:
        mllog.config(logger=logger)
    mllog.config(default_stack_offset=1)
    log.event(key=C.SUBMISSION_BENCHMARK, value=C.GNMT)
    log.event(key=C.SUBMISSION_ORG, value="mlperf-workflow")
    log.event(key=C.SUBMISSION_DIVISION, value="open")
    log.event(key=C.SUBMISSION_STATUS, value="research")
    log.event(key=C.SUBMISSION_PLATFORM, value=args.platform)
    log.event(key="workflow_scale", value=SCALE_LABEL)
    log.start(key=C.INIT_START)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    log.event(key=C.SEED, value=args.seed)

    train_src = read_lines(args.data_dir / "train.en")
    train_tgt = read_lines(args.data_dir / "train.de")
    dev_src = read_lines(args.data_dir / "dev.en")
    dev_ref = read_lines(args.data_dir / "dev.de")
    src_vocab, tgt_vocab = Vocab(train_src), Vocab(train_tgt)
    pairs = [
        (src_vocab.encode(s), tgt_vocab.encode(t))
        for s, t in zip(train_src, train_tgt, strict=True)
    ]
    dev_ids = [src_vocab.encode(s) for s in dev_src]
    cfg = GNMTConfig(
        len(src_vocab), len(tgt_vocab), args.hidden, args.enc_layers, args.dec_layers, args.dropout
    )
    model = GNMT(cfg, init_range=args.init_range)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    rng = random.Random(args.seed)
    log.event(key=C.GLOBAL_BATCH_SIZE, value=args.batch_size)
    log.event(key=C.OPT_NAME, value="adam")
    log.event(key=C.OPT_BASE_LR, value=args.learning_rate)
    log.event(key=C.MAX_SEQUENCE_LENGTH, value=max(len(s) for s, _ in pairs))
    log.event(key=C.TRAIN_SAMPLES, value=len(pairs))
    log.event(key=C.EVAL_SAMPLES, value=len(dev_ids))
    log.end(key=C.INIT_STOP)

    log.start(key=C.RUN_START)
    status = C.ABORTED
    for epoch in range(1, args.max_epochs + 1):
        t0 = time.monotonic()
        log.start(key=C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
        total, steps = 0.0, 0
        for src, src_len, tgt_in, tgt_out in batches(pairs, args.batch_size, rng):
            logits = model(src, src_len, tgt_in)
            loss = loss_fn(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        log.end(key=C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
        if not math.isfinite(total):
            print(f"epoch {epoch}: loss is {total}; stopping", flush=True)
            break
        log.start(key=C.EVAL_START, metadata={C.EPOCH_NUM: epoch})
        bleu = round(evaluate(model, dev_ids, dev_ref, tgt_vocab), 2)
        log.event(key=C.EVAL_ACCURACY, value=bleu, metadata={C.EPOCH_NUM: epoch})
        log.end(key=C.EVAL_STOP, metadata={C.EPOCH_NUM: epoch})
        print(
            f"epoch {epoch}: train loss {total / steps:.3f}, BLEU {bleu:.2f} "
            f"(target {args.target_bleu}), {time.monotonic() - t0:.1f} s, pid {os.getpid()}",
            flush=True,
        )
        if bleu >= args.target_bleu:
            status = C.SUCCESS
            break
    log.end(key=C.RUN_STOP, metadata={C.STATUS: status})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
