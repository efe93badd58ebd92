"""The one exception type users see: a problem, named, with the fix."""


class MlexpError(Exception):
    """A user-facing error: the message names what is wrong and how to fix it.

    The entrypoint prints it as one paragraph (no traceback) and exits with status 2.
    """
