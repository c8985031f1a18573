"""The backends, looked up by the config's ``backend:`` name (see scripts/run/backends/base.py for
the interface). A new backend is one module here with a ``BACKEND`` object, its name in
:data:`NAMES` and its import in :func:`_load` (or :data:`_BACKENDS`), its schema enum value,
docs and tests; nothing else names it.

The container backends' modules (the engine, image and fingerprint code) are imported when a
system first names one, so a campaign on the local backend loads none of them at every start."""

from __future__ import annotations

from scripts.run.backends import imports, local
from scripts.run.backends.base import Backend, Launch
from scripts.run.backends.errors import BackendError

__all__ = ["NAMES", "Backend", "BackendError", "Launch", "get"]

NAMES: tuple[str, ...] = ("local", "docker", "podman", "pyxis", "import")
# the backends loaded so far, by name
_BACKENDS: dict[str, Backend] = {b.name: b for b in (local.BACKEND, imports.BACKEND)}


def get(name: str) -> Backend:
    """The backend called ``name``; BackendError naming the known ones otherwise."""
    try:
        return _BACKENDS[name]
    except KeyError:
        return _load(name)


def _load(name: str) -> Backend:
    """Import the module of the backend called ``name``, once."""
    backend: Backend
    if name == "docker":
        # lazy: the container engine's code loads only for a system that names it
        from scripts.run.backends import docker

        backend = docker.BACKEND
    elif name == "podman":
        # lazy: as docker's
        from scripts.run.backends import podman

        backend = podman.BACKEND
    elif name == "pyxis":
        # lazy: docker's, and the srun and enroot command lines
        from scripts.run.backends import pyxis

        backend = pyxis.BACKEND
    else:
        raise BackendError(f"unknown backend {name!r}; backends: {', '.join(NAMES)}") from None
    _BACKENDS[name] = backend
    return backend
