"""The one exception type mlexp raises for problems a user can fix: printed as one paragraph, no traceback."""

__all__ = ["MlexpError"]


class MlexpError(Exception):
    """A problem with the user's config, data or request, with the fix in the message.

    The entrypoint prints it as one paragraph (no traceback) and exits with ``exit_code``:
    2 for errors; a mode may raise a subclass with another code for an outcome that is not
    an error but must be visible to a script (the monitor exits 3 when it finds violations).
    """

    exit_code: int = 2
