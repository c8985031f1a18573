"""NVIDIA-style ``config_<SYSTEM>.sh`` files read the way their users read them: by running them.

NVIDIA's implementations (training_results_v5.1, ``NVIDIA/benchmarks/<benchmark>/
implementations/<impl>/``) are configured by ``config_<SYSTEM>.sh`` files that the user
sources before ``sbatch -N $DGXNNODES -t $WALLTIME run.sub``. A config sources its siblings
(``source $(dirname ${BASH_SOURCE[0]})/config_common.sh``), sets hyper-parameters as
``export BATCHSIZE=${BATCHSIZE:-32}``, the system as ``export DGXNNODES=2``, and computes
others (``WALLTIME=$((9 + ${NEXP:-1} * ($WALLTIME_RUNANDTIME + 3)))``; ``DGXSYSTEM`` from its
own file name). Such files are programs, so they are read by running them with bash
(:func:`read_exported`, :func:`read_vars`), never with regular expressions. The files the
workflow generates (scripts/mlperf/config_sh.py) are read back the same way in its tests.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# variables bash itself exports into the environment of the commands it runs
SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
# names a config may not be given: bash's own variables, and the generated file's helpers
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_END = "__config_sh_end__"  # printed after the script returns: a script that exits never prints it


class ConfigScriptError(RuntimeError):
    """A config script that failed, timed out, or exited where a sourced file must return."""


def _clean_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """``env -i`` plus PATH and the caller's variables: nothing of the workflow's own
    environment (a user's LR or DGXNGPU) leaks into what a config computes."""
    out = {"PATH": CLEAN_PATH}
    for key, value in (env or {}).items():
        if not NAME.match(key) or "\0" in str(value):
            raise ValueError(f"environment variable {key!r}={value!r} cannot be given to bash")
        out[key] = str(value)
    return out


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "(nothing on stderr)"


def _run_sourced(path: Path, after: str, env: Mapping[str, str] | None, timeout_s: float) -> bytes:
    """Source ``path`` in a clean bash and run ``after`` in the same shell; return what
    ``after`` prints (the script's own stdout is discarded: NVIDIA's configs echo).

    bash runs in the script's folder and sources ``./<name>``, so a config's
    ``$(dirname ${BASH_SOURCE[0]})`` is ``.`` even when the folder's path has spaces. stdin is
    /dev/null (a script that asks fails instead of waiting), and bash is its own process group,
    killed whole at the timeout. A script that calls ``exit`` fails: sourcing it would end the
    shell that sources it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigScriptError(f"{path}: no such config script")
    bash = shutil.which("bash", path=CLEAN_PATH)
    if bash is None:
        raise ConfigScriptError(f"{path}: no bash in {CLEAN_PATH} to read it with")
    script = (
        f"source ./{shlex.quote(path.name)} >/dev/null || exit\nprintf '%s\\0' {_END}\n{after}\n"
    )
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [bash, "--noprofile", "--norc", "-c", script],
            cwd=path.parent,
            env=_clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_session(proc)
            err.seek(0)
            raise ConfigScriptError(
                f"{path}: still running after {timeout_s:g} s, stopped (reading a config runs "
                f"it); last line on stderr: {_last_line(err.read())}"
            ) from None
        kill_session(proc)  # nothing the script started in the background outlives the read
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise ConfigScriptError(
            f"{path}: exit status {proc.returncode}; last line on stderr: {_last_line(stderr)}"
        )
    head, sep, rest = out.partition(_END.encode() + b"\0")
    if not sep or head:
        raise ConfigScriptError(
            f"{path}: exit status 0 before its end (the script calls exit; sourcing it would "
            f"end the shell that sources it); last line on stderr: {_last_line(stderr)}"
        )
    return rest


def kill_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``proc`` (started with ``start_new_session``) and reap it:
    nothing a config or launcher started in the background outlives the read."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def read_exported(
    path: str | Path, *, env: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> dict[str, str]:
    """The variables a config script exports, as ``source F; env -0`` in a clean bash shows them.

    Reading a config runs it, as run.sub and a user's ``source config_X.sh`` do (in its own
    folder, ``bash --noprofile --norc``, ``env -i`` with only PATH and ``env``, e.g. NEXP,
    DATADIR). The result has the variables given in ``env`` (what the script's environment
    holds), not the shell's own (PWD, OLDPWD, SHLVL, _), nor PATH unless the script changed it.
    A script that fails, exits, or runs past ``timeout_s`` raises :class:`ConfigScriptError`.
    """
    out = _run_sourced(Path(path), "exec env -0", env, timeout_s)
    base_path = _clean_env(env)["PATH"]
    found: dict[str, str] = {}
    for entry in out.split(b"\0"):
        name, sep, value = _decode(entry).partition("=")
        if not sep or name in SHELL_OWN or (name == "PATH" and value == base_path):
            continue
        found[name] = value
    return found


def read_vars(
    path: str | Path,
    names: Iterable[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """The values of the named shell variables after sourcing the script, exported or not
    (NVIDIA's config_mounts.sh leaves ``_cont_mounts`` unexported). Unset names are absent.
    Reading runs the script, exactly as :func:`read_exported` does."""
    wanted = [_name_to_read(n) for n in names]
    # names are checked identifiers, so they are safe in the command's text; NUL separates
    # values because a value may hold newlines and any byte but NUL
    after = "\n".join(f"[[ -v {n} ]] && printf '%s\\0%s\\0' {n} \"${{{n}}}\"" for n in wanted)
    out = _run_sourced(Path(path), after + "\ntrue", env, timeout_s)
    parts = out.split(b"\0")
    return {_decode(parts[i]): _decode(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}


def _name_to_read(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"{name!r} is not a shell variable name (letters, digits, _)")
    return name
