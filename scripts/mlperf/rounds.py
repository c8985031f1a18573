"""The MLPerf Training rounds this workflow knows, and what mlperf-logging does not state of them.

:data:`ROUNDS` is every Training round whose benchmark definitions are generated
(config/benchmarks/mlperf-v<round>.yaml, by :mod:`scripts.mlperf.round_files`);
:func:`known_round` refuses any other (a round becomes a path). The tables are what the package
does not state: each benchmark's title, task and metric name (:data:`BENCHMARK_INFO`), the v0.6
targets (:data:`V06`: the training_0.6.0 rule files check no quality), the benchmarks left out
(:data:`NOT_DEFINED`), folder aliases to try, and the notes of a round's file header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RoundsError(ValueError):
    """A rule file or package table that cannot be read into a definition."""


@dataclass(frozen=True)
class Info:
    """How a benchmark is described: its title, its task, its metric's name, and from which
    round on this description holds (ssd became RetinaNet on OpenImages in v2.0)."""

    title: str
    task: str
    metric: str
    since: str = "0.6"


BENCHMARK_INFO: dict[str, tuple[Info, ...]] = {
    "bert": (Info("BERT-Large", "Wikipedia masked-LM pre-training", "mlm_accuracy"),),
    "dlrm": (Info("DLRM", "Criteo Terabyte click-through prediction", "auc"),),
    "dlrm_dcnv2": (Info("DLRM-DCNv2", "Criteo multi-hot click-through prediction", "auc"),),
    "dlrmv4": (Info("DLRMv4", "recommendation", "eval_accuracy"),),
    "gnmt": (Info("GNMT", "WMT16 English-German translation", "bleu"),),
    "transformer": (Info("Transformer", "WMT17 English-German translation", "bleu"),),
    "maskrcnn": (Info("Mask R-CNN", "COCO 2017 detection and segmentation", "bbox_map"),),
    "minigo": (Info("MiniGo", "9x9 Go reinforcement learning", "win_rate"),),
    "resnet": (Info("ResNet-50 v1.5", "ImageNet classification", "top1_accuracy"),),
    "ssd": (
        Info("SSD-ResNet34", "COCO 2017 object detection", "map"),
        Info("SSD (RetinaNet)", "OpenImages object detection", "map", since="2.0"),
    ),
    "retinanet": (Info("RetinaNet", "OpenImages object detection", "map"),),
    "rnnt": (Info("RNN-T", "LibriSpeech speech recognition", "wer"),),
    "unet3d": (Info("3D U-Net", "KiTS19 kidney tumor segmentation", "mean_dice"),),
    "gpt3": (Info("GPT-3 175B", "C4 language-model pre-training", "log_perplexity"),),
    "stable_diffusion": (Info("Stable Diffusion", "text-to-image generation", "fid"),),
    "gnn": (Info("R-GAT", "IGBH graph node classification", "accuracy"),),
    "rgat": (Info("R-GAT", "IGBH graph node classification", "accuracy"),),
    "llama2_70b_lora": (Info("Llama 2 70B LoRA", "GovReport fine-tuning", "eval_loss"),),
    "llama31_405b": (Info("Llama 3.1 405B", "C4 language-model pre-training", "log_perplexity"),),
    "llama31_8b": (Info("Llama 3.1 8B", "C4 language-model pre-training", "log_perplexity"),),
    "flux1": (Info("FLUX.1", "text-to-image generation", "eval_loss"),),
    "gpt_oss_20b": (Info("GPT-OSS 20B", "language-model pre-training", "log_perplexity"),),
    "deepseekv3_671b": (Info("DeepSeek-V3 671B", "language-model pre-training", "log_perplexity"),),
    "qwen35_397b_grpo": (Info("Qwen3.5 397B GRPO", "LLM reinforcement learning", "eval_accuracy"),),
}

# v0.6: the rule files check no quality, so the targets are those the v0.6 logs print
# (accuracy_threshold=0.759, --threshold=0.23, MIN_BBOX_MAP/MIN_SEGM_MAP, --target-bleu 24.0,
# BLEU 25.0, win rate 0.5); descriptions and scales as config/benchmarks/mlperf-v0.6.yaml had
# them before it was generated (they are part of every v0.6 result already made).
V06: dict[str, dict[str, Any]] = {
    "gnmt": {
        "description": "WMT16 English-German translation to BLEU 24.0",
        "scale": "full WMT16 En-De, BLEU 24.0",
        "quality": {"metric": "bleu", "target": 24.0, "direction": "higher"},
    },
    "transformer": {
        "description": "WMT17 English-German translation to BLEU 25.0",
        "scale": "full WMT17 En-De, BLEU 25.0",
        "quality": {"metric": "bleu", "target": 25.0, "direction": "higher"},
    },
    "ssd": {
        "description": "COCO 2017 object detection to 0.23 mAP",
        "scale": "full COCO 2017, mAP 0.23",
        "quality": {"metric": "map", "target": 0.23, "direction": "higher"},
    },
    "resnet": {
        "description": "ImageNet classification to 75.9% top-1",
        "scale": "full ImageNet, top-1 0.759",
        "quality": {"metric": "top1_accuracy", "target": 0.759, "direction": "higher"},
    },
    "maskrcnn": {
        "description": "COCO 2017 to 0.377 box mAP and 0.339 mask mAP",
        "scale": "full COCO 2017, box mAP 0.377, mask mAP 0.339",
        "quality": {
            "metric": "bbox_map",
            "target": 0.377,
            "direction": "higher",
            "value_key": "BBOX",
            "also_targets": {"SEGM": 0.339},
        },
    },
    "minigo": {
        "description": "9x9 Go reinforcement learning to a 50% win rate",
        "scale": "win rate 0.50 against the target model",
        "quality": {"metric": "win_rate", "target": 0.5, "direction": "higher"},
    },
}
V06_TITLES = {
    "gnmt": "GNMT",
    "transformer": "Transformer",
    "ssd": "SSD-ResNet34",
    "resnet": "ResNet-50 v1.5",
    "maskrcnn": "Mask R-CNN",
    "minigo": "MiniGo",
}

# benchmarks the package allows in a round that get no definition, and why
NOT_DEFINED: dict[tuple[str, str], str] = {
    ("0.6", "ncf"): (
        "benchmark_meta allows NCF in v0.6 but training_0.6.0 has no rule file for it (no "
        "compliance check, no target) and MLPerf Training v0.6 published no NCF result"
    ),
}

# folder names other than the benchmark's own that published results use, as long as the
# result summarizer maps them to the benchmark (checked in rule_files.folder_aliases)
FOLDER_ALIAS_CANDIDATES = {"maskrcnn": ("mask",)}  # v0.6 Google: results/<system>/mask/

# what the header of a round's file says about its logs, where they differ
ROUND_NOTES = {
    "0.6": """\
An example import system: config/systems/nvidia-dgx1-v0.6.yaml. The v0.6 rule files check no
quality; the targets are those the logs print (accuracy_threshold=0.759, --threshold=0.23,
MIN_BBOX_MAP/MIN_SEGM_MAP, --target-bleu 24.0, BLEU 25.0, win rate 0.5).

What differs between their logs (all v0.6 `:::MLL` lines), and how it is read:
  gnmt, ssd            eval_accuracy is a number; time = run_stop - run_start
  transformer          eval_accuracy is a string ("25.33"): read as a number; the RESULT line
                       also carries the seed
  resnet (MXNet)       one RESULT line per process (8 per run): the slowest is kept as
                       result_line_wall_s; the score never uses RESULT lines
  maskrcnn             eval_accuracy is {"accuracy": {"BBOX": .., "SEGM": ..}}: both targets
  minigo               no run_stop: time = the timestamp of eval_result (seconds from
                       run_start to the first model that beat the target), as the v0.6
                       compliance checker (mlperf_logging training_0.6.0/score.yaml) scores it
""",
}


# every round of the package this module was written against; tests check it against the
# installed package, so a new ruleset is noticed
ROUNDS: tuple[str, ...] = (
    "0.6", "0.7", "1.0", "1.1", "2.0", "2.1", "3.0", "3.1",
    "4.0", "4.1", "5.0", "5.1", "6.0", "6.1",
)  # fmt: skip


def known_round(round_: str, given_as: str = "--round") -> str:
    """``round_`` when it is one of :data:`ROUNDS`; ValueError in one line otherwise. A round
    becomes a path (config/benchmarks/mlperf-v<round>.yaml, the checker's
    training_<round>.0/), so only a known one is taken: ``--round ../../../etc/x`` is not."""
    if round_ in ROUNDS:
        return round_
    raise ValueError(
        f"{given_as} {round_!r} is not an MLPerf Training round this workflow knows "
        f"(known: {', '.join(ROUNDS)}; scripts/mlperf/rounds.py ROUNDS)"
    )


def benchmark_name(mlperf_name: str, round_: str) -> str:
    """The workflow's name of an MLPerf benchmark of a round: ('bert', '5.0') -> 'bert-v5.0'."""
    return f"{mlperf_name}-v{round_}"


def ruleset_of(round_: str) -> str:
    """'5.0' -> '5.0.0', the ruleset (compliance_checker/training_<ruleset>) of a round."""
    return f"{round_}.0"


def round_key(round_: str) -> tuple[int, ...]:
    """'4.1' -> (4, 1), to order rounds."""
    return tuple(map(int, round_.split(".")))


def info_of(mlperf_name: str, round_: str) -> Info:
    """The description table's entry of a benchmark that holds in a round."""
    if mlperf_name not in BENCHMARK_INFO:
        raise RoundsError(
            f"{mlperf_name!r} (round {round_}) is new to scripts/mlperf/rounds.py: add it to "
            "BENCHMARK_INFO (title, task, metric name)"
        )
    held = [i for i in BENCHMARK_INFO[mlperf_name] if round_key(i.since) <= round_key(round_)]
    return held[-1]
