"""Train the embedded GNMT-shaped model to a BLEU target, logging MLPerf events (mllog).

One invocation is one MLPerf-style run: initialise, ``run_start``, then epochs of training each
followed by an evaluation (corpus BLEU from sacrebleu on the held-out set), until the target is
met (``run_stop`` status ``success``) or ``--max-epochs`` have passed (status ``aborted``, i.e.
the run did not converge, which is a result and not a crash: the exit code is 0 either way).

The MLPerf events go to stdout as ``:::MLLOG {json}`` lines, together with human-readable
progress lines; the workflow keeps the whole stream as the run's ``mlperf.log``.

Device: ``--device cpu|cuda``; by default ``cuda`` when ``--gpus`` (the system's ``gpus``, which
the workflow's command passes) is above 0, else ``cpu``. ``--amp`` trains in mixed precision:
on cuda float16 autocast with a GradScaler (as NVIDIA's ``--math amp_fp16``), on the CPU
bfloat16 autocast (no scaler needed: bfloat16 has float32's range). On a CPU with bfloat16
instructions (AVX512_BF16 here, 2 AMD EPYC cores) an epoch of the embedded model took 10-20%
less time than in float32 (a few noisy pairs on a shared machine; it also changes the
numerics: seed 888763526 needed 8 epochs to BLEU 90 instead of 7); on a CPU without them it
can be slower, so it stays off by default. The progress lines say which ("on cuda amp",
"on cpu amp"). The MLPerf events are the same on every device.

Presets: ``--preset reference`` is GNMT at NVIDIA's MLPerf v0.6 size (4 encoder and 4 decoder
LSTM layers of 1024 units, batch 256, Adam 2e-3, dropout 0.2, training sentences up to 75
tokens); the vocabulary comes from the dataset (32k BPE tokens for WMT16). Explicit options
override a preset's values. ``--corpus wmt16`` reads the preprocessed WMT16 files that
config/benchmarks/gnmt-v0.6.yaml verifies (see ``CORPORA``).
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
from array import array
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sacrebleu
import torch
from mlperf_logging import mllog
from mlperf_logging.mllog import constants as C
from torch import nn

from scripts.gnmt.model import BOS, EOS, GNMT, PAD, UNK, GNMTConfig

CPU = torch.device("cpu")
SCALE_LABEL = "embedded-toy (synthetic corpus, CPU scale; not an MLPerf result)"
WMT16_LABEL = (
    "embedded trainer on WMT16 en-de (greedy decoding, BLEU of tokenised newstest2014, "
    "constant learning rate; not an MLPerf result)"
)

# Named sets of defaults (--preset). "embedded" is the argparse defaults below (the embedded
# benchmark's command passes its own hyper-parameters from config/benchmarks/gnmt.yaml anyway).
# "reference": NVIDIA's MLPerf Training v0.6 GNMT (training_results_v0.6, NVIDIA/benchmarks/
# gnmt: --hidden-size 1024 --num-layers 4, config_DGX1.sh LR 2.0e-3, TRAIN_BATCH_SIZE 256 per
# GPU, MAX_SEQ_LEN 75; seq2seq/models/gnmt.py dropout 0.2, init uniform 0.1, grad clip 5).
PRESETS: dict[str, dict[str, Any]] = {
    "embedded": {},
    "reference": {
        "hidden": 1024,
        "enc_layers": 4,
        "dec_layers": 4,
        "dropout": 0.2,
        "init_range": 0.1,
        "batch_size": 256,
        "learning_rate": 2e-3,
        "max_length": 75,
        "grad_clip": 5.0,
        "max_epochs": 8,
    },
}


@dataclass(frozen=True, slots=True)
class Corpus:
    """File names of a corpus layout in --data-dir: training pairs, evaluation source and the
    evaluation references (``bpe``: "@@ " continuation marks are removed from hypotheses and
    references before BLEU)."""

    train_src: str
    train_tgt: str
    eval_src: str
    eval_ref: str
    bpe: bool = False


CORPORA: dict[str, Corpus] = {
    # the embedded synthetic corpus (scripts/gnmt/corpus.py)
    "toy": Corpus("train.en", "train.de", "dev.en", "dev.de"),
    # the seven files of config/benchmarks/gnmt-v0.6.yaml (NVIDIA's verify_dataset.sh): train on
    # the cleaned BPE training set, evaluate on newstest2014 (BPE source, BPE reference; MLPerf
    # scores the detokenised output against newstest2014.de, see README "Running on a GPU")
    "wmt16": Corpus(
        "train.tok.clean.bpe.32000.en",
        "train.tok.clean.bpe.32000.de",
        "newstest2014.tok.bpe.32000.en",
        "newstest2014.tok.bpe.32000.de",
        bpe=True,
    ),
}


class Vocab:
    def __init__(self, sentences: Sequence[str]) -> None:
        words = sorted({w for s in sentences for w in s.split()})
        self.itos = ["<pad>", "<s>", "</s>", "<unk>", *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: str) -> array[int]:
        # a compact int array: a WMT16-sized corpus (4.5M pairs) fits in memory this way
        return array("i", [self.stoi.get(w, UNK) for w in sentence.split()])

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.itos[i] for i in ids if i not in (PAD, BOS, EOS))


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SystemExit(f"error: corpus file {path} is missing (is --data-dir right?)") from None


def pad(seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([[*s] + [PAD] * (width - len(s)) for s in seqs], dtype=torch.long)


def unbpe(text: str) -> str:
    """Undo subword-nmt BPE: "Ver@@ such" -> "Versuch"."""
    return text.replace("@@ ", "").removesuffix("@@")


def pick_device(name: str, gpus: int) -> torch.device:
    """The device of this run: ``name`` (cpu/cuda), or for "auto" cuda when the system gives
    the run GPUs. A cuda run without a usable GPU is a clear error, never a silent CPU run."""
    if name == "auto":
        name = "cuda" if gpus > 0 else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        why = (
            f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build"
            if torch.version.cuda is None
            else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, driver?)"
        )
        raise SystemExit(f"error: --device cuda but torch.cuda.is_available() is False: {why}")
    return torch.device(name)


def autocast(device: torch.device, amp: bool) -> AbstractContextManager[Any]:
    """With --amp: float16 autocast on cuda, bfloat16 on the CPU; plain float32 otherwise."""
    if amp:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return nullcontext()


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """Loss scaling for float16 (cuda with --amp); a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")


def batches(
    pairs: list[tuple[array[int], array[int]]], batch_size: int, rng: random.Random
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


def evaluate(
    model: GNMT,
    src_ids: Sequence[Sequence[int]],
    refs: list[str],
    tgt_vocab: Vocab,
    device: torch.device = CPU,
    amp: bool = False,
    bpe: bool = False,
) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a tokenisation) of greedy translations."""
    model.eval()
    hyps: list[str] = []
    for i in range(0, len(src_ids), 256):
        chunk = src_ids[i : i + 256]
        lengths = torch.tensor([len(s) for s in chunk])  # pack_padded_sequence wants them on CPU
        with autocast(device, amp):
            out = model.greedy_decode(
                pad(chunk).to(device), lengths, max_len=int(lengths.max()) * 2 + 2
            )
        hyps.extend(tgt_vocab.decode(row) for row in out.tolist())
    model.train()
    if bpe:
        hyps, refs = [unbpe(h) for h in hyps], [unbpe(r) for r in refs]
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


@dataclass(slots=True)
class Trainer:
    """What one optimisation step needs (the epoch loop and scripts/gnmt/speed.py share it)."""

    model: GNMT
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    device: torch.device
    amp: bool
    grad_clip: float

    def step(
        self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor
    ) -> torch.Tensor:
        """One step on a batch (src_len stays on the CPU); returns the loss, on the device."""
        dev = self.device
        src, tgt_in = src.to(dev, non_blocking=True), tgt_in.to(dev, non_blocking=True)
        tgt_out = tgt_out.to(dev, non_blocking=True)
        with autocast(dev, self.amp):
            logits = self.model(src, src_len, tgt_in)
            loss = self.loss_fn(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients (a no-op without --amp)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach().float()


def train_epoch(
    trainer: Trainer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, int, int]:
    """Loss sum (on the device: no host sync per step), steps and tokens (source + target)."""
    loss_sum, steps, tokens = torch.zeros((), device=trainer.device), 0, 0
    for src, src_len, tgt_in, tgt_out in batches:
        tokens += int(src_len.sum()) + int((tgt_out != PAD).sum())
        loss_sum, steps = loss_sum + trainer.step(src, src_len, tgt_in, tgt_out), steps + 1
    return loss_sum, steps, tokens


def load_corpus(
    args: argparse.Namespace,
) -> tuple[Vocab, list[tuple[array[int], array[int]]], list[array[int]], list[str], int]:
    """Target vocabulary, encoded training pairs, encoded evaluation sources, their references
    and the source vocabulary's size, from the --corpus layout in --data-dir."""
    layout = CORPORA[args.corpus]
    train_src = read_lines(args.data_dir / layout.train_src)
    train_tgt = read_lines(args.data_dir / layout.train_tgt)
    dev_src = read_lines(args.data_dir / layout.eval_src)
    dev_ref = read_lines(args.data_dir / layout.eval_ref)
    src_vocab, tgt_vocab = Vocab(train_src), Vocab(train_tgt)
    pairs = [
        (src_vocab.encode(s), tgt_vocab.encode(t))
        for s, t in zip(train_src, train_tgt, strict=True)
    ]
    del train_src, train_tgt
    if args.max_length > 0:
        keep = args.max_length  # as NVIDIA's --max-length-train: both sides at most this long
        pairs = [(s, t) for s, t in pairs if 0 < len(s) <= keep and len(t) <= keep]
    if not pairs:
        raise SystemExit(f"error: no training pair of {args.data_dir} is at most --max-length long")
    # an empty evaluation line is one unknown token (a packed LSTM takes no empty sequence)
    dev_ids = [src_vocab.encode(s) or array("i", [UNK]) for s in dev_src]
    return tgt_vocab, pairs, dev_ids, dev_ref, len(src_vocab)


def _stdout_logger() -> logging.Logger:
    """A logger that prints MLPerf lines to the *current* stdout (mllog's default handler keeps
    the stdout of import time)."""
    logger = logging.getLogger("mlperf_workflow.mllog")
    logger.handlers[:] = [logging.StreamHandler(sys.stdout)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _flag(value: str) -> bool:
    """--amp, --amp true, --amp false (the workflow's hp_args writes ``--amp True``)."""
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="embedded",
        help="named defaults: 'reference' is GNMT at MLPerf v0.6 size (explicit options win)",
    )
    p.add_argument("--corpus", choices=sorted(CORPORA), default="toy", help="file layout")
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
    p.add_argument(
        "--max-length", type=int, default=0, help="drop training pairs longer (0: keep all)"
    )
    p.add_argument("--gpus", type=int, default=0, help="GPUs the system gives this run")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: cuda when --gpus > 0, else cpu",
    )
    p.add_argument(
        "--amp",
        type=_flag,
        nargs="?",
        const=True,
        default=False,
        help="mixed precision: float16 autocast + GradScaler on cuda, bfloat16 on the CPU",
    )
    p.add_argument("--platform", default=socket.gethostname(), help="submission_platform value")
    first, _ = p.parse_known_args(argv)
    p.set_defaults(**PRESETS[first.preset])
    args = p.parse_args(argv)
    if args.enc_layers < 2 or args.dec_layers < 1:
        p.error("--enc-layers must be >= 2 and --dec-layers >= 1")
    args.device = str(pick_device(args.device, args.gpus))
    return args


def model_config(args: argparse.Namespace, src_vocab: int, tgt_vocab: int) -> GNMTConfig:
    return GNMTConfig(
        src_vocab, tgt_vocab, args.hidden, args.enc_layers, args.dec_layers, args.dropout
    )


def _log_submission(log: Any, args: argparse.Namespace) -> None:
    """The submission events of the MLPerf log: who, which benchmark, at which scale."""
    log.event(key=C.SUBMISSION_BENCHMARK, value=C.GNMT)
    log.event(key=C.SUBMISSION_ORG, value="mlperf-workflow")
    log.event(key=C.SUBMISSION_DIVISION, value="open")
    log.event(key=C.SUBMISSION_STATUS, value="research")
    log.event(key=C.SUBMISSION_PLATFORM, value=args.platform)
    log.event(key="workflow_scale", value=WMT16_LABEL if args.corpus == "wmt16" else SCALE_LABEL)


def _log_hyperparameters(
    log: Any, args: argparse.Namespace, pairs: Sequence[tuple[Any, Any]], n_eval: int
) -> None:
    """The hyper-parameter and data-size events of the MLPerf log."""
    log.event(key=C.GLOBAL_BATCH_SIZE, value=args.batch_size)
    log.event(key=C.OPT_NAME, value="adam")
    log.event(key=C.OPT_BASE_LR, value=args.learning_rate)
    log.event(key=C.MAX_SEQUENCE_LENGTH, value=max(len(s) for s, _ in pairs))
    log.event(key=C.TRAIN_SAMPLES, value=len(pairs))
    log.event(key=C.EVAL_SAMPLES, value=n_eval)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = mllog.get_mllogger()
    logger = _stdout_logger()
    if log.logger is not logger:
        mllog.config(logger=logger)
    mllog.config(default_stack_offset=1)
    _log_submission(log, args)
    log.start(key=C.INIT_START)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    log.event(key=C.SEED, value=args.seed)

    tgt_vocab, pairs, dev_ids, dev_ref, src_size = load_corpus(args)
    layout = CORPORA[args.corpus]
    device = torch.device(args.device)
    model = GNMT(model_config(args, src_size, len(tgt_vocab)), init_range=args.init_range)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    scaler = grad_scaler(device, args.amp)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    rng = random.Random(args.seed)
    _log_hyperparameters(log, args, pairs, len(dev_ids))
    log.end(key=C.INIT_STOP)

    log.start(key=C.RUN_START)
    status = C.ABORTED
    for epoch in range(1, args.max_epochs + 1):
        t0 = time.monotonic()
        log.start(key=C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
        loss_sum, steps, tokens = train_epoch(
            Trainer(model, optimizer, scaler, loss_fn, device, args.amp, args.grad_clip),
            batches(pairs, args.batch_size, rng),
        )
        total = float(loss_sum)  # waits for the device's last step
        train_s = time.monotonic() - t0
        log.end(key=C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
        if not math.isfinite(total):
            print(f"epoch {epoch}: loss is {total}; stopping", flush=True)
            break
        log.start(key=C.EVAL_START, metadata={C.EPOCH_NUM: epoch})
        bleu = round(evaluate(model, dev_ids, dev_ref, tgt_vocab, device, args.amp, layout.bpe), 2)
        log.event(key=C.EVAL_ACCURACY, value=bleu, metadata={C.EPOCH_NUM: epoch})
        log.end(key=C.EVAL_STOP, metadata={C.EPOCH_NUM: epoch})
        print(
            f"epoch {epoch}: train loss {total / max(steps, 1):.3f}, BLEU {bleu:.2f} "
            f"(target {args.target_bleu}), {time.monotonic() - t0:.1f} s, "
            f"{tokens / max(train_s, 1e-9):.0f} tokens/s on {device.type}"
            f"{' amp' if args.amp else ''}, pid {os.getpid()}",
            flush=True,
        )
        if bleu >= args.target_bleu:
            status = C.SUCCESS
            break
    log.end(key=C.RUN_STOP, metadata={C.STATUS: status})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
