"""The errors backend steps raise (a container engine's: :class:`ContainerError`): their own
module, so that the image code (which the backends' protocol names in its types) and the
backends import them without importing each other."""


class BackendError(RuntimeError):
    """A backend step failed; the message says which and what to do."""


class ContainerError(BackendError):
    """A container engine step failed; the message says which and what to do."""
