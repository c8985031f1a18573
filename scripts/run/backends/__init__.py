"""The backends, looked up by the config's ``backend:`` name (see scripts/run/backends/base.py for
the interface). A new backend is one module here with a ``BACKEND`` object, its entry in
:data:`_BACKENDS`, its schema enum value, docs and tests; nothing else names it."""

from __future__ import annotations

from scripts.run.backends import docker, imports, local, podman
from scripts.run.backends.base import Backend, Launch
from scripts.run.backends.errors import BackendError

__all__ = ["NAMES", "Backend", "BackendError", "Launch", "get"]

_BACKENDS: dict[str, Backend] = {
    b.name: b for b in (local.BACKEND, docker.BACKEND, podman.BACKEND, imports.BACKEND)
}
NAMES: tuple[str, ...] = tuple(_BACKENDS)


def get(name: str) -> Backend:
    """The backend called ``name``; BackendError naming the known ones otherwise."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; backends: {', '.join(NAMES)}") from None
