"""The command of a run: its seed, its hyper-parameters with the system's overrides, and the
command context (the 12 placeholders of ``implementation.command`` and ``env``), listed once in
:func:`_context`.

- A run's seed is configured or derived from the benchmark and the run number
  (:func:`seed_for`), the same on every system;
- :func:`command_context` gives a run's values (for its command and the container's data
  preparation), :func:`sample_context` sample values for the config check
  (:mod:`scripts.campaign.config_checks`);
- :func:`render_command` fills a template, each value one shell word.

Pure: it reads no file.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import string
from collections.abc import Mapping
from typing import Any

from scripts.core.config import ConfigError
from scripts.core.records import hyperparameters


def derive_seed(benchmark: str, run: int) -> int:
    """The seed of run ``run`` when none is configured: a hash of benchmark and run number.

    The same run number gets the same seed on every system, so systems are compared on the
    same seeds; different numbers get unrelated seeds (not 1, 2, 3...).
    """
    digest = hashlib.sha256(f"mlperf-workflow:{benchmark}:{run}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seed_for(bench: Mapping[str, Any], benchmark: str, run: int) -> int:
    """Run ``run``'s seed: the benchmark's ``seeds[run - 1]``, or :func:`derive_seed`."""
    seeds = bench.get("seeds")
    return int(seeds[run - 1]) if seeds else derive_seed(benchmark, run)


def hp_args(hp: Mapping[str, Any]) -> list[str]:
    """``--name value`` for each hyper-parameter (``_`` in names becomes ``-``), as words:
    ``{hp_args}`` puts each one into a command as one shell word."""
    return [w for k, v in hp.items() for w in (f"--{k.replace('_', '-')}", str(v))]


def run_port(run: int) -> int:
    """{port}: a TCP port for a run's distributed launcher (NVIDIA's run.sub passes
    ``--master_port=$((4242 + RANDOM % 1000))``); distinct per run number, in the same range."""
    return 4242 + run % 1000


def _context(
    *,
    python: str,
    dataset_dir: str,
    run_dir: str,
    seed: int,
    run: int,
    target: float,
    threads: int,
    gpus: int,
    system: str,
    hp: Mapping[str, Any],
) -> dict[str, Any]:
    """The placeholders of a command template, each with its raw value (the one place that
    lists them; :func:`render_command` quotes)."""
    return {
        "python": python,
        "dataset_dir": dataset_dir,
        "run_dir": run_dir,
        "seed": seed,
        "run": run,
        "target": target,
        "threads": threads,
        "gpus": gpus,
        "system": system,
        "port": run_port(run),
        "hp": dict(hp),
        "hp_args": hp_args(hp),
    }


def command_context(
    config: Mapping[str, Any],
    benchmark: str,
    system: str,
    run: int,
    *,
    python: str,
    dataset_dir: str,
    run_dir: str,
) -> dict[str, Any]:
    """The placeholders of run ``run`` of (benchmark, system): ``python``, ``dataset_dir`` and
    ``run_dir`` as the command sees them (inside a container: its python and mount points)."""
    bench, sys_ = config["benchmarks"][benchmark], config["systems"][system]
    return _context(
        python=python,
        dataset_dir=dataset_dir,
        run_dir=run_dir,
        seed=seed_for(bench, benchmark, run),
        run=run,
        target=bench["quality"]["target"],
        threads=sys_["threads"],
        gpus=sys_["gpus"],
        system=system,
        hp=hyperparameters(config, benchmark, system),
    )


def sample_context(bench: Mapping[str, Any]) -> dict[str, Any]:
    """Sample values of every placeholder, to check a benchmark's templates before any run."""
    return _context(
        python="python",
        dataset_dir="d",
        run_dir="r",
        seed=1,
        run=1,
        target=1.0,
        threads=1,
        gpus=0,
        system="s",
        hp=bench["implementation"].get("hyperparameters", {}),
    )


class _Fill(string.Formatter):
    """str.format with every substituted value made one shell word (``shell``) or plain text.

    A value that is a list (``{hp_args}``) is a list of words. The context holds raw values:
    quoting is done here, once, the same way for every placeholder."""

    def __init__(self, shell: bool) -> None:
        self.shell = shell

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, list | tuple):
            words = [format(v, format_spec) for v in value]
            return shlex.join(words) if self.shell else " ".join(words)
        text = format(value, format_spec)
        return shlex.quote(text) if self.shell else text


@functools.lru_cache(maxsize=256)
def _parse(template: str) -> tuple[tuple[str, str | None, str | None, str | None], ...]:
    """A template's (literal text, field, format spec, conversion) parts, parsed once."""
    return tuple(string.Formatter().parse(template))


def placeholders(template: str) -> set[str]:
    """The placeholder names a template uses (``{hp[LR]}`` is ``hp``); a template that cannot
    be parsed uses none here (:func:`render_command` names its error)."""
    try:
        parts = _parse(template)
    except ValueError:
        return set()
    return {f.split("[")[0].split(".")[0] for _, f, _, _ in parts if f is not None}


def render_command(template: str, context: Mapping[str, Any], *, shell: bool = True) -> str:
    """Fill a command template: each placeholder's value becomes one shell word (a value with
    spaces or ``;`` stays one argument and never runs as code). ``shell=False``: plain text,
    for environment values. A clear error for unknown placeholders."""
    try:
        parts = _parse(template)
        for _, field, _, _ in parts:
            if field is None:
                continue
            root = field.split("[")[0].split(".")[0]
            if root not in context:
                raise ConfigError(
                    f"unknown placeholder {{{field}}}; known: "
                    + ", ".join("{" + k + "}" for k in sorted(context))
                )
        fill = _Fill(shell)
        if all(
            f is None or (f.isidentifier() and not spec and c is None) for _, f, spec, c in parts
        ):
            # only plain {name} fields: what str.format does with them, without its machinery
            # (a run's command is rendered once per job: 10,000 times in a dry run)
            return "".join(
                text if f is None else text + fill.format_field(context[f], "")
                for text, f, _, _ in parts
            )
        return fill.format(template, **context)
    except ConfigError:
        raise
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"placeholder {exc} has no value in {template!r}") from None
    except ValueError as exc:  # a bad format spec or a lone brace
        raise ConfigError(f"{exc} in {template!r} (write {{{{ for a literal brace)") from None
