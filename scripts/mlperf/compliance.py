"""mlperf-logging's own checks of MLPerf logs: compliance checker, RCP checker, seed rule.

The official result summarizer (``mlperf_logging.result_summarizer``, ``_read_result_file``)
runs the compliance checker on every ``result_N.txt`` before it scores a folder, and a log that
fails counts as a dropped (non-converged) run. This module runs the same code, the same way:

- :func:`check_log`: ``mlp_compliance.make_checker(usage, ruleset, quiet=True, werror=False)``
  and ``mlp_compliance.main(log, "<usage>_<ruleset>/common.yaml", checker)``, as the summarizer
  calls them, into a :class:`Verdict` (``pass``, ``fail`` with the checker's first message on
  one line, or ``not applicable`` where there is no MLPerf ruleset: the embedded benchmark is
  no MLPerf benchmark, and a made-up pass would be a lie). The checker's own output (it logs
  through the root logger and may print) is captured, bounded, and never reaches the caller's
  stdout. Verdicts are cached by the log's sha256, the usage, the ruleset and the checker's
  version, one small JSON file each in ``cache_dir``: an unchanged log is not checked again; a
  corrupt cache file is ignored and rewritten. Cost, measured on NVIDIA's 68 v5.0 logs: the
  checker takes 0.02-0.15 s per log (median 0.03 s; 0.14 s for a 200 kB llama31_405b log,
  0.07 s for a 137 kB bert log); a cached verdict (one sha256 of the log) 0.3-0.7 ms.
- :func:`rcp_verdict`: ``rcp_checker.check_directory`` (the summarizer's call: pruned RCPs,
  ``set_scaling``) on a set of runs of one benchmark: pass, ``scaled`` by the factor the review
  writes to ``scaling.json``, or fail, as rcp_checker decides.
- :func:`check_seeds`: the package checker's seed rule (``package_checker/seed_checker.py``):
  every run of a benchmark logs a seed, and no two runs log the same one.

``python -m scripts compliance check LOG --ruleset 5.0.0`` prints a verdict as JSON (``rcp``
and ``seeds`` likewise for a set of logs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from scripts.core import formats, hashing

Status = Literal["pass", "fail", "not applicable"]
RcpStatus = Literal["pass", "scaled", "fail", "not applicable"]
NOT_APPLICABLE: Status = "not applicable"
STATUSES: tuple[str, ...] = ("pass", "fail", NOT_APPLICABLE)
NO_RULESET = "no MLPerf ruleset: not an MLPerf benchmark"
DETAIL_MAX_CHARS = 400  # one line of runs.csv, not the checker's whole context dump
CAPTURE_MAX_CHARS = 64 << 10  # what is kept of the checker's own output (the rest is counted)
CACHE_FORMAT = 1  # the cache files' own version: any other is a miss (the cache is disposable)
PARSE_ERRORS = "Log lines had parsing errors."  # the checker's message (mlp_compliance.check_file)
PARSE_LINE_CHARS = 120  # of the bad line, in the detail
SEED_RULE = "mlperf-logging's package checker wants a distinct logged seed for every run"


@dataclass(frozen=True)
class Verdict:
    """The compliance checker's verdict on one log."""

    status: Status
    detail: str  # the first failing rule / message on one line, "" on pass
    ruleset: str | None
    checker: str  # "mlperf-logging 4.1.68"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RcpVerdict:
    """rcp_checker's verdict on a set of runs of one benchmark."""

    status: RcpStatus
    factor: float | None  # the score's RCP factor (scaling.json; 1.0: none); None: not checked
    detail: str  # rcp_checker's message ("RCP found", "Insufficient convergence", ...)
    benchmark: str | None  # submission_benchmark of the runs
    ruleset: str | None
    checker: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def checker_version() -> str:
    """The installed mlperf-logging, e.g. "mlperf-logging 4.1.68" (in every verdict and cache
    key: another version may judge a log differently)."""
    # lazy: importlib.metadata (and email) load only when a verdict is made, not with the runner
    from importlib import metadata

    return f"mlperf-logging {metadata.version('mlperf-logging')}"


def _mlp_compliance() -> Any:
    """mlperf-logging's compliance checker module, imported on first use: every training job
    imports this module (through scripts/run/result_json.py), and only a benchmark with a
    ruleset runs the checker (its import costs 18 ms of each job's start)."""
    # lazy: for start-up speed (see the docstring)
    from mlperf_logging.compliance_checker import mlp_compliance

    from scripts.mlperf import fast_checker  # lazy as well: it imports the YAML loader

    fast_checker.install(mlp_compliance)  # its two hot spots, exact equivalents (see there)
    return mlp_compliance


@cache
def rulesets(usage: str = "training") -> tuple[str, ...]:
    """The rulesets the installed compliance checker has rules for (``<usage>_<ruleset>/``)."""
    root = Path(_mlp_compliance().__file__).parent
    return tuple(
        sorted(
            p.name.split("_", 1)[1]
            for p in root.glob(f"{usage}_*")
            if (p / "common.yaml").is_file()
        )
    )


def _require_ruleset(usage: str, ruleset: str) -> None:
    if ruleset not in rulesets(usage):
        raise ValueError(
            f"{checker_version()} has no compliance rules for {usage} {ruleset!r}; it has "
            f"{', '.join(rulesets(usage)) or 'none'} (set the benchmark's ruleset to one of them)"
        )


class _Bounded(io.TextIOBase):
    """A text sink that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int = CAPTURE_MAX_CHARS) -> None:
        self._parts: list[str] = []
        self._room = limit
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        kept = text[: max(self._room, 0)]
        self._parts.append(kept)
        self._room -= len(kept)
        self.dropped += len(text) - len(kept)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts)


@contextlib.contextmanager
def _captured() -> Iterator[_Bounded]:
    """Run mlperf-logging's code with its output in a bounded buffer: its ``logging.warning``
    calls go to the root logger (which, without a handler, would call ``basicConfig`` and print
    to stderr for good), its prints to stdout; both are captured and restored after."""
    sink = _Bounded()
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [logging.StreamHandler(sink)]
    try:
        with (
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield sink
    finally:
        root.handlers = saved


def one_line(message: str, limit: int = DETAIL_MAX_CHARS) -> str:
    """A checker message on one line: its lines up to the context dump (``current
    context[s]=...``, ``current line[v]=...``: pages of JSON), whitespace collapsed, cut at
    ``limit`` characters."""
    kept: list[str] = []
    for line in message.splitlines():
        if line.strip().startswith("current "):
            break
        kept.append(line.strip())
    text = " ".join(" ".join(kept).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Recorder:
    """The order in which the checker records its failure messages: ``put_message`` on the
    checker object is wrapped to note each (key, message), then calls the original."""

    def __init__(self, checker: Any) -> None:
        self.calls: list[tuple[str | None, str]] = []
        self._put = checker.put_message
        checker.put_message = self.put_message

    def put_message(self, msg: str, key: str | None = None) -> None:
        self.calls.append((key, msg))
        self._put(msg, key)

    def first_failure(self, checker: Any) -> tuple[str, int]:
        """The first message recorded that still counts when the check ends (a later config
        may drop a key's message: ``overwrite_messages``), and how many more there are."""
        remaining = [*checker.overwritable.values(), *checker.not_overwritable]
        if not remaining:
            return "the compliance checker failed without a message", 0
        first = next(
            (
                msg
                for key, msg in self.calls
                if (key is None and msg in checker.not_overwritable)
                or (key is not None and checker.overwritable.get(key) == msg)
            ),
            remaining[0],
        )
        return str(first), len(remaining) - 1


def _run_checker(path: Path, usage: str, ruleset: str) -> tuple[bool, str]:
    """(valid, first failure) of one log, by mlperf-logging's compliance checker called as the
    result summarizer calls it (``_read_result_file``). The one function that runs it."""
    config_file = f"{usage}_{ruleset}/common.yaml"
    mlp_compliance = _mlp_compliance()
    checker = mlp_compliance.make_checker(usage=usage, ruleset=ruleset, quiet=True, werror=False)
    recorder = _Recorder(checker)
    # a module-global queue: a check that raised midway leaves its configs in it
    mlp_compliance.enqueued_configs.clear()
    with _captured() as output:
        try:
            valid, _, _, _ = mlp_compliance.main(str(path), config_file, checker)
        except OSError:
            raise  # the log cannot be read: no verdict on it
        except Exception as exc:  # its parser and rules raise on some malformed lines (KeyError)
            return False, one_line(f"the compliance checker raised {type(exc).__name__}: {exc}")
        finally:
            mlp_compliance.enqueued_configs.clear()
    if valid:
        return True, ""
    first, more = recorder.first_failure(checker)
    if first == PARSE_ERRORS:
        first = f"{first} {_first_parse_error(output.getvalue())}"
    return False, one_line(first + (f" (+{more} more)" if more else ""))


def _first_parse_error(output: str) -> str:
    """The first parsing error in the checker's log output (it logs each bad line, then
    ``   ^^  <error>``), as "First: <error> in: <line>"."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("^^") and i > 0:
            bad = lines[i - 1].strip()[:PARSE_LINE_CHARS]
            return f"First: {line.strip()[2:].strip()} in: {bad}"
    return "(not in its output)"


def _cache_key(path: Path, usage: str, ruleset: str) -> dict[str, Any]:
    return {
        "format_version": CACHE_FORMAT,
        "log_sha256": hashing.file_sha256(path),
        "usage": usage,
        "ruleset": ruleset,
        "checker": checker_version(),
    }


def _cached(path: Path, key: Mapping[str, Any]) -> Verdict | None:
    """The verdict in a cache file made for ``key``; None when missing, corrupt or another's."""
    try:
        data = formats.read_json(path)
    except (OSError, formats.CorruptFile):
        return None  # missing, or half-written / not JSON: checked again and rewritten
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in key.items()):
        return None
    status, detail = data.get("status"), data.get("detail")
    if status not in ("pass", "fail") or not isinstance(detail, str):
        return None
    return Verdict(status, detail, key["ruleset"], key["checker"])


def check_log(
    path: Path | str,
    *,
    ruleset: str | None,
    usage: str = "training",
    cache_dir: Path | None = None,
) -> Verdict:
    """The compliance checker's verdict on the log at ``path`` under ``<usage>_<ruleset>``.

    ``ruleset`` None (no MLPerf benchmark) is ``not applicable``; a ruleset the installed
    checker has no rules for raises ValueError; an unreadable ``path`` raises OSError. Any log
    content (random bytes, a truncated file) gives a verdict, never an exception. With
    ``cache_dir``, a verdict is kept in ``<cache_dir>/<sha256 of the key>.json`` and an
    unchanged log is not checked again."""
    if ruleset is None:
        return Verdict(NOT_APPLICABLE, NO_RULESET, None, checker_version())
    _require_ruleset(usage, ruleset)
    path = Path(path)
    key: dict[str, Any] = {}
    cache_file: Path | None = None
    if cache_dir is not None:
        key = _cache_key(path, usage, ruleset)
        cache_file = Path(cache_dir) / f"{hashing.canonical_sha256(key)}.json"
        found = _cached(cache_file, key)
        if found is not None:
            return found
    started = time.perf_counter()
    valid, detail = _run_checker(path, usage, ruleset)
    seconds = time.perf_counter() - started
    verdict = Verdict("pass" if valid else "fail", detail, ruleset, checker_version())
    if cache_file is not None:
        record = {**key, "status": verdict.status, "detail": detail, "checker_s": round(seconds, 4)}
        hashing.write_json(cache_file, record)
    return verdict


def logged_seeds(path: Path | str, *, ruleset: str) -> list[int]:
    """The values of the log's ``seed`` events, read by mlperf-logging's parser (as the
    package checker's seed checker reads them); a value that is no integer is skipped."""
    # lazy, as _mlp_compliance: only the seed check reads a log with the package's parser
    from mlperf_logging.compliance_checker import mlp_parser

    with _captured():
        loglines, _ = mlp_parser.parse_file(str(path), ruleset=ruleset)
    seeds = []
    for line in loglines:
        if line.key == "seed":
            try:
                seeds.append(int(line.value["value"]))
            except (TypeError, ValueError):
                continue
    return seeds


def check_seeds(seeds: Mapping[str, int | None]) -> list[str]:
    """The package checker's seed rule on the runs of one benchmark (run name -> its seed):
    one warning line per seed that two or more runs share (naming them), and one per run that
    logs no seed; [] when every run has its own seed. (The package checker compares a seed
    with the source line that logged it; runs of one benchmark log it from the same line.)"""
    out: list[str] = []
    runs_of: dict[int, list[str]] = {}
    for run, seed in seeds.items():
        if seed is None:
            out.append(f"run {run} logs no seed: {SEED_RULE}")
        else:
            runs_of.setdefault(int(seed), []).append(str(run))
    for seed, runs in runs_of.items():
        if len(runs) > 1:
            out.append(f"runs {', '.join(runs)} share seed {seed}: {SEED_RULE}")
    return out


def _rcp_file(rcp_checker: Any, usage: str, ruleset: str, benchmark: str) -> Path:
    return Path(rcp_checker.__file__).parent / f"{usage}_{ruleset}" / f"rcps_{benchmark}.json"


def rcp_verdict(
    logs: Sequence[Path | str],
    *,
    ruleset: str | None,
    usage: str = "training",
    rcp_pass: str = "pruned_rcps",
) -> RcpVerdict:
    """rcp_checker's verdict on the runs ``logs`` (every run of one benchmark on one system),
    by ``rcp_checker.check_directory`` as the result summarizer calls it, on a temporary
    folder of links to the logs (the check writes scaling.json there, never beside the logs).

    ``pass``: the runs converge no faster than the reference allows; ``scaled``: they pass but
    converge faster than the RCP mean, so the score is multiplied by ``factor`` (> 1); ``fail``
    as rcp_checker fails them (``detail`` its message); ``not applicable``: no ruleset, or
    mlperf-logging has no RCPs for the ruleset and benchmark."""
    if ruleset is None:
        return RcpVerdict(NOT_APPLICABLE, None, NO_RULESET, None, None, checker_version())
    if not logs:
        return RcpVerdict(NOT_APPLICABLE, None, "no runs", None, ruleset, checker_version())
    with tempfile.TemporaryDirectory(prefix="rcp-") as tmp, _captured():
        folder = Path(tmp)
        for i, log in enumerate(logs):
            (folder / f"result_{i}.txt").symlink_to(Path(log).resolve())
        return _rcp_of_folder(folder, usage, ruleset, rcp_pass)


def _rcp_of_folder(folder: Path, usage: str, ruleset: str, rcp_pass: str) -> RcpVerdict:
    # lazy: rcp_checker imports scipy.stats (about 1 s), which only this check needs
    from mlperf_logging.rcp_checker import rcp_checker

    version = checker_version()
    files = sorted(str(f) for f in folder.glob("result_*.txt"))
    try:
        _, _, benchmark = rcp_checker.get_submission_epochs(files, ruleset, False)
    except Exception as exc:  # a log with no eval_accuracy: conv_epoch is unbound in 4.1.x
        detail = one_line(f"rcp_checker raised {type(exc).__name__}: {exc}")
        return RcpVerdict("fail", None, detail, None, ruleset, version)
    if benchmark is None:
        detail = "the runs name no single submission_benchmark and global_batch_size"
        return RcpVerdict("fail", None, detail, None, ruleset, version)
    if (
        benchmark not in rcp_checker.submission_runs.get(usage, {})
        or not _rcp_file(rcp_checker, usage, ruleset, benchmark).is_file()
    ):
        detail = f"{version} has no RCPs for {benchmark} {ruleset}"
        return RcpVerdict(NOT_APPLICABLE, None, detail, benchmark, ruleset, version)
    try:
        # the summarizer's call (result_summarizer._compute_strong_scaling_scores)
        passed, message, factor = rcp_checker.check_directory(
            str(folder),
            usage,
            ruleset,
            False,  # verbose
            False,  # bert_train_samples
            rcp_file=None,
            rcp_pass=rcp_pass,
            rcp_bypass=False,
            set_scaling=True,
        )
    except Exception as exc:  # its arithmetic on odd logs (no evals, one run) raises
        detail = one_line(f"rcp_checker raised {type(exc).__name__}: {exc}")
        return RcpVerdict("fail", None, detail, benchmark, ruleset, version)
    factor = float(factor)
    status: RcpStatus = "fail" if not passed else "scaled" if factor > 1.0 else "pass"
    return RcpVerdict(status, factor, message, benchmark, ruleset, version)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts compliance",
        description="mlperf-logging's compliance checker, RCP checker and seed rule, as JSON.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="the compliance verdict on one log")
    check.add_argument("log", type=Path)
    check.add_argument("--cache", type=Path, help="folder of cached verdicts")
    rcp = sub.add_parser("rcp", help="the RCP verdict on the runs of one benchmark")
    rcp.add_argument("logs", type=Path, nargs="+")
    seeds = sub.add_parser("seeds", help="the seed rule on the runs of one benchmark")
    seeds.add_argument("logs", type=Path, nargs="+")
    for s in (check, rcp, seeds):
        s.add_argument("--ruleset", required=True, help="e.g. 5.0.0 (training_5.0.0)")
        s.add_argument("--usage", default="training", help="training (default) or hpc")
    args = p.parse_args(argv)
    try:
        if args.command == "check":
            out: Any = check_log(
                args.log, ruleset=args.ruleset, usage=args.usage, cache_dir=args.cache
            ).to_dict()
        elif args.command == "rcp":
            out = rcp_verdict(args.logs, ruleset=args.ruleset, usage=args.usage).to_dict()
        else:
            found = {str(f): logged_seeds(f, ruleset=args.ruleset) for f in args.logs}
            first = {f: (s[0] if s else None) for f, s in found.items()}
            out = {"seeds": found, "warnings": check_seeds(first)}
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
