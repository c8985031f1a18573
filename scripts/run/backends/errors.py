"""The error every backend step raises: its own module, so that the image code (which the
backends' protocol names in its types) and the backends import it without importing each other."""


class BackendError(RuntimeError):
    """A backend step failed; the message says which and what to do."""
