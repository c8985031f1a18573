"""The embedded benchmark: its corpus, its GNMT-shaped model, and its MLPerf-logging trainer."""

from __future__ import annotations

import hashlib
import re
import shlex
import tarfile
from pathlib import Path

import pytest
import torch
import yaml

from scripts.gnmt import corpus, train
from scripts.gnmt.model import GNMT, PAD, GNMTConfig
from scripts.mlperf.log_parser import parse_text
from scripts.mlperf.outcome import run_outcome
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


# --- devices, mixed precision, the reference-size preset -------------------------------------

CUDA = torch.cuda.is_available()


def tiny_args(data: Path, *extra: str) -> list[str]:
    return [
        "--data-dir",
        str(data),
        "--seed",
        "5",
        "--target-bleu",
        "101",
        "--max-epochs",
        "1",
        "--hidden",
        "16",
        "--threads",
        "1",
        *extra,
    ]


def event_keys(out: str) -> list[str]:
    return [e.key for e in parse_text(out).events]


def test_device_cpu_explicitly_gives_the_same_mlperf_events_as_the_default(
    tiny_corpus: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert train.main(tiny_args(tiny_corpus)) == 0
    default = capfd.readouterr().out
    assert train.main(tiny_args(tiny_corpus, "--device", "cpu", "--gpus", "0")) == 0
    explicit = capfd.readouterr().out
    assert event_keys(explicit) == event_keys(default)
    assert "tokens/s on cpu," in explicit and "tokens/s on cpu," in default


def test_the_device_follows_the_systems_gpus_through_the_command() -> None:
    from scripts.campaign import config_checks, run_specs

    conf = config_checks.load_campaign([REPO / "config/systems/local-gpu.yaml"])
    gpu = conf["systems"]["local-gpu"]
    assert (gpu["backend"], gpu["gpus"]) == ("local", 1)

    def trainer_args(system: str) -> list[str]:
        spec = run_specs.run_spec(
            conf, "gnmt", system, 1, python="python", dataset_dir="d", run_dir="r"
        )
        argv = shlex.split(spec.command)
        assert argv[:3] == ["python", "-m", "scripts.gnmt.train"]
        return argv[3:]

    assert train.parse_args(trainer_args("local")).device == "cpu"  # gpus: 0
    if CUDA:
        assert train.parse_args(trainer_args("local-gpu")).device == "cuda"
    else:  # gpus: 1 on a machine without a usable GPU: a clear stop, never a CPU run
        with pytest.raises(SystemExit, match=r"--device cuda but torch.cuda.is_available\(\)"):
            train.parse_args(trainer_args("local-gpu"))
    # the device is the system's hyper-parameter (hp_args come last); local's command is the
    # one its finished runs were fingerprinted with
    assert "--device" not in trainer_args("local") and "--gpus" not in trainer_args("local")
    conf["systems"]["local-gpu"]["hyperparameters"] = {"gnmt": {"device": "cpu"}}
    assert train.parse_args(trainer_args("local-gpu")).device == "cpu"


def test_amp_on_the_cpu_is_bfloat16_autocast_with_the_same_events(
    tiny_corpus: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert train.main(tiny_args(tiny_corpus, "--device", "cpu")) == 0
    fp32 = capfd.readouterr().out
    assert train.main(tiny_args(tiny_corpus, "--device", "cpu", "--amp")) == 0
    amp = capfd.readouterr().out
    assert event_keys(amp) == event_keys(fp32)
    assert "tokens/s on cpu amp," in amp and "tokens/s on cpu," in fp32
    device = torch.device("cpu")
    with train.autocast(device, True):
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    assert not train.grad_scaler(device, True).is_enabled()  # bfloat16 needs no loss scaling
    # the workflow writes a boolean hyper-parameter as "--amp True" / "--amp False"
    assert train.parse_args(tiny_args(tiny_corpus, "--amp", "False")).amp is False
    assert train.parse_args(tiny_args(tiny_corpus, "--amp", "True")).amp is True
    assert train.parse_args(tiny_args(tiny_corpus, "--amp")).amp is True
    with pytest.raises(SystemExit):
        train.parse_args(tiny_args(tiny_corpus, "--amp", "maybe"))


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (CI has none)")
@pytest.mark.parametrize("amp", [False, True])
def test_on_cuda_the_trainer_logs_the_same_events_and_converges(
    tiny_corpus: Path, capfd: pytest.CaptureFixture[str], amp: bool
) -> None:
    assert train.main(tiny_args(tiny_corpus, "--device", "cpu")) == 0
    cpu = capfd.readouterr().out
    extra = ["--device", "cuda", *(["--amp"] if amp else [])]
    assert train.main(tiny_args(tiny_corpus, *extra)) == 0
    gpu = capfd.readouterr().out
    assert event_keys(gpu) == event_keys(cpu)
    assert f"tokens/s on cuda{' amp' if amp else ''}," in gpu
    args = tiny_args(tiny_corpus, *extra)
    args[args.index("--target-bleu") + 1], args[args.index("--max-epochs") + 1] = "0", "2"
    assert train.main(args) == 0
    assert run_outcome(parse_text(capfd.readouterr().out), 0.0).status == "success"


def test_reference_preset_is_gnmt_v06_size_and_explicit_options_win() -> None:
    base = ["--data-dir", ".", "--seed", "1", "--target-bleu", "24"]
    args = train.parse_args([*base, "--preset", "reference"])
    assert (args.hidden, args.enc_layers, args.dec_layers) == (1024, 4, 4)
    assert (args.batch_size, args.learning_rate, args.max_length) == (256, 2e-3, 75)
    assert train.parse_args([*base, "--preset", "reference", "--hidden", "512"]).hidden == 512
    assert train.parse_args(base).hidden == 128  # the embedded default is unchanged
    with torch.device("meta"):  # the full-size model, without allocating its 178M weights
        model = GNMT(train.model_config(args, 32000, 32000), init_range=args.init_range)
    h, v = 1024, 32000
    enc, dec = model.encoder, model.decoder
    assert enc.bi.bidirectional and enc.bi.hidden_size == h // 2 and len(enc.layers) == 3
    assert all(m.input_size == h and m.hidden_size == h for m in enc.layers)
    assert dec.att_rnn.hidden_size == h and len(dec.layers) == 3
    assert all(m.input_size == 2 * h for m in dec.layers)  # [input; attention context]
    assert dec.classifier.out_features == v

    def lstm(i: int, n: int) -> int:  # one direction: 4 gates of input, recurrent, 2 biases
        return 4 * n * (i + n) + 8 * n

    expected = (
        2 * v * h  # embeddings
        + 2 * lstm(h, h // 2)  # bidirectional first encoder layer
        + 3 * lstm(h, h)  # encoder
        + lstm(h, h)  # decoder attention LSTM
        + 3 * lstm(2 * h, h)  # decoder
        + 2 * h * h
        + h
        + 1
        + h  # attention: query and key, v, the scalar g, b
        + h * v
        + v  # classifier
    )
    assert sum(p.numel() for p in model.parameters()) == expected
    assert 170e6 < expected < 180e6


def test_wmt16_layout_reads_the_v06_files_and_removes_bpe_before_bleu(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    files = yaml.safe_load((REPO / "config/benchmarks/gnmt-v0.6.yaml").read_text())
    names = {f["name"] for f in files["benchmarks"]["gnmt-v0.6"]["dataset"]["files"]}
    layout = train.CORPORA["wmt16"]
    assert {layout.train_src, layout.train_tgt, layout.eval_src, layout.eval_ref} <= names
    c = corpus.make_corpus(n_train=64, n_dev=8)

    def bpe(lines: list[str]) -> str:  # split every word of 5+ letters as subword-nmt would
        return "".join(
            " ".join(w if len(w) < 5 else f"{w[:3]}@@ {w[3:]}" for w in s.split()) + "\n"
            for s in lines
        )

    for name, key in [
        (layout.train_src, "train.en"),
        (layout.train_tgt, "train.de"),
        (layout.eval_src, "dev.en"),
        (layout.eval_ref, "dev.de"),
    ]:
        (tmp_path / name).write_text(bpe(c[key]))
    assert train.unbpe("der Ver@@ such@@") == "der Versuch"
    argv = tiny_args(tmp_path, "--corpus", "wmt16", "--max-length", "12", "--target-bleu", "0")
    assert train.main(argv) == 0
    parsed = parse_text(capfd.readouterr().out)
    assert run_outcome(parsed, 0.0).status == "success"
    kept = parsed.first("train_samples")
    assert kept is not None and 0 < kept.value <= 64  # long pairs were dropped


def test_speed_times_a_preset_on_synthetic_tokens(capfd: pytest.CaptureFixture[str]) -> None:
    from scripts.gnmt import speed

    argv = ["--preset", "embedded", "--vocab", "50", "--batch-size", "4", "--seq-len", "5"]
    assert speed.main([*argv, "--seconds", "0.2", "--warmup-steps", "1", "--device", "cpu"]) == 0
    line = capfd.readouterr().out
    m = re.search(r"timed: [\d.]+ s, (\d+) steps, (\d+) tokens/s .*batch 4 x 5 tokens, cpu", line)
    assert m and int(m.group(1)) >= 1 and int(m.group(2)) > 0, line
    assert speed.main([*argv, "--seconds", "0.2", "--device", "cpu", "--amp"]) == 0
    assert re.search(r"batch 4 x 5 tokens, cpu amp$", capfd.readouterr().out.strip())


@pytest.mark.workflow
@pytest.mark.skipif(CUDA, reason="torch can use a GPU here")
def test_a_gpu_system_without_a_usable_gpu_stops_its_run_with_the_reason(tmp_path: Path) -> None:
    """The local-gpu overlay on a machine whose torch has no CUDA: the run is a crash whose
    reason is the first thing shown, never a run silently trained on the CPU."""
    from tests.conftest import copy_workflow, snakemake

    wf = copy_workflow(tmp_path / "wf")
    (wf / "one.yaml").write_text(
        "benchmarks: {gnmt: {runs: 1}}\ncampaign: {systems: [local-gpu]}\n"
    )
    overlays = ["config/systems/local-gpu.yaml", "one.yaml"]
    proc = snakemake(wf, "--cores", "1", "results/gnmt/summary.csv", "--configfile", *overlays)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error: run 1 of gnmt/local-gpu failed: trainer exited with status 1" in out
    assert "error: --device cuda but torch.cuda.is_available() is False: " in out
    assert not (wf / "results/gnmt/local-gpu/run_01/result.json").exists()


def test_the_wmt16_benchmark_runs_the_reference_preset_on_gnmt_v06s_files(tmp_path: Path) -> None:
    from scripts.campaign import config_checks, run_specs, topology

    site = tmp_path / "site.yaml"
    site.write_text(
        "benchmarks: {gnmt-wmt16: {dataset: {mirror: /srv/mlperf/wmt16}}}\n"
        "campaign: {systems: [local-gpu]}\n"
    )
    conf = config_checks.load_campaign(
        [REPO / "config/benchmarks/gnmt-wmt16.yaml", REPO / "config/systems/local-gpu.yaml", site]
    )
    v06 = yaml.safe_load((REPO / "config/benchmarks/gnmt-v0.6.yaml").read_text())
    assert (
        conf["benchmarks"]["gnmt-wmt16"]["dataset"]["files"]
        == v06["benchmarks"]["gnmt-v0.6"]["dataset"]["files"]
    )
    assert topology.benchmark_systems(conf, "gnmt-wmt16") == ["local-gpu"]
    conf["systems"]["local-gpu"]["hyperparameters"] = {"gnmt-wmt16": {"amp": True}}
    spec = run_specs.run_spec(
        conf, "gnmt-wmt16", "local-gpu", 1, python="python", dataset_dir="d", run_dir="r"
    )
    argv = shlex.split(spec.command)[3:]
    assert argv[-2:] == ["--amp", "True"] and "--gpus" in argv
    # the same command on a CPU-only system (gpus: 0, no amp) parses to the reference preset
    cpu_argv = argv[:-2]
    cpu_argv[cpu_argv.index("--gpus") + 1] = "0"
    cpu = train.parse_args(cpu_argv)
    assert (cpu.corpus, cpu.preset, cpu.hidden, cpu.device) == ("wmt16", "reference", 1024, "cpu")
    assert cpu.target_bleu == 24.0
