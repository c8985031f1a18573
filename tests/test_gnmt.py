"""The embedded benchmark: its corpus, its GNMT-shaped model, and its MLPerf-logging trainer."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
import torch
import yaml

from scripts.gnmt import corpus, train
from scripts.gnmt.model import GNMT, PAD, GNMTConfig
from scripts.mlperf_log import parse_text, run_outcome
from tests.conftest import REPO


def test_the_committed_archive_is_the_generated_corpus_and_matches_the_config() -> None:
    archive = REPO / "resources" / "toy-ende-v1.tar.gz"
    bench = yaml.safe_load((REPO / "config/benchmarks/gnmt.yaml").read_text())["benchmarks"]["gnmt"]
    entry = bench["dataset"]["files"][0]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == entry["sha256"]
    expected = corpus.make_corpus()
    with tarfile.open(archive) as tar:
        for name, lines in expected.items():
            member = tar.extractfile(f"{corpus.CORPUS_NAME}/{name}")
            assert member is not None
            assert member.read().decode().splitlines() == lines
        assert b"SYNTHETIC" in tar.extractfile(f"{corpus.CORPUS_NAME}/README.txt").read()


def test_archive_bytes_do_not_depend_on_time_or_user(tmp_path: Path) -> None:
    a = corpus.build_archive(tmp_path / "a.tar.gz", n_train=50, n_dev=10)
    b = corpus.build_archive(tmp_path / "b.tar.gz", n_train=50, n_dev=10)
    assert a == b
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert all(m.mtime == 0 and m.uname == "" for m in tar.getmembers())


def test_corpus_grammar_reorders_and_held_out_sentences_are_unseen() -> None:
    c = corpus.make_corpus(n_train=500, n_dev=50)
    assert not set(c["train.en"]) & set(c["dev.en"])
    lex = corpus.make_lexicon(2019)
    verbs = {s: t for s, t in lex.verbs}
    for src, tgt in zip(c["train.en"][:50], c["train.de"][:50], strict=True):
        verb = next(w for w in src.split() if w in verbs)
        assert tgt.split()[-1] == verbs[verb]  # verb-final
        assert tgt.split()[0] in ("der", "die", "das", "ein", "eine", "eines")


def test_model_shapes_bidirectional_first_layer_and_residual_stack() -> None:
    torch.manual_seed(0)
    cfg = GNMTConfig(src_vocab=20, tgt_vocab=25, hidden=16, enc_layers=3, dec_layers=3)
    model = GNMT(cfg)
    assert model.encoder.bi.bidirectional and len(model.encoder.layers) == 2
    src = torch.tensor([[5, 6, 7, 8], [5, 6, PAD, PAD]])
    lengths = torch.tensor([4, 2])
    logits = model(src, lengths, torch.tensor([[1, 9, 10], [1, 11, PAD]]))
    assert logits.shape == (2, 3, 25)
    out = model.greedy_decode(src, lengths, max_len=5)
    assert out.shape[0] == 2 and out.shape[1] <= 5
    # GNMT keeps the attention's normalisation scalar at 1/sqrt(H), not the uniform init
    assert model.decoder.attention.g.item() == pytest.approx(16**-0.5)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A 64-pair corpus, unpacked, for trainer tests that take a second."""
    archive = tmp_path / "c.tar.gz"
    corpus.build_archive(archive, n_train=64, n_dev=8)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / corpus.CORPUS_NAME


def test_trainer_logs_mlperf_events_and_ends_aborted_when_target_not_met(
    tiny_corpus: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = tiny_corpus
    rc = train.main(
        [
            "--data-dir",
            str(data),
            "--seed",
            "5",
            "--target-bleu",
            "101",
            "--max-epochs",
            "2",
            "--hidden",
            "16",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    parsed = parse_text(capfd.readouterr().out)
    outcome = run_outcome(parsed, 101.0)
    assert outcome.status == "aborted" and outcome.converged is False
    assert outcome.seed == 5 and outcome.epochs == 2 and outcome.time_to_train_s is not None
    keys = {e.key for e in parsed.events}
    assert {
        "submission_benchmark",
        "submission_org",
        "submission_division",
        "seed",
        "run_start",
        "epoch_start",
        "epoch_stop",
        "eval_accuracy",
        "run_stop",
    } <= keys
    assert [e.metadata["epoch_num"] for e in parsed.all("eval_accuracy")] == [1, 2]


def test_trainer_converges_and_says_success(
    tiny_corpus: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rc = train.main(
        [
            "--data-dir",
            str(tiny_corpus),
            "--seed",
            "5",
            "--target-bleu",
            "0",
            "--max-epochs",
            "3",
            "--hidden",
            "16",
        ]
    )
    assert rc == 0
    outcome = run_outcome(parse_text(capfd.readouterr().out), 0.0)
    assert outcome.status == "success" and outcome.converged and outcome.epochs == 1


def test_missing_corpus_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="corpus file .*train.en is missing"):
        train.main(["--data-dir", str(tmp_path), "--seed", "1", "--target-bleu", "1"])
