"""Progress bars for long work (folds, epochs, trials) that stay silent when output is not a terminal.

The bar is tqdm's, written to stderr with ``disable=None``: tqdm then draws it only when
stderr is a TTY, so CI logs and redirected output never see carriage returns or bars.
``MLEXP_PROGRESS=0`` turns bars off on a terminal too; ``MLEXP_PROGRESS=1`` forces them on.

Use it around an iterable, or by hand with ``update()``::

    for fold in progress(folds, total=5, desc="cv folds", unit="fold"):
        ...
    with progress(total=n_epochs, desc="epochs", unit="epoch") as bar:
        bar.update(1)
        bar.set_postfix(valid_loss=0.31)
"""

import os
import sys
from typing import Any, Iterable, Iterator, Optional

from tqdm import tqdm

__all__ = ["progress", "progress_enabled"]


def progress_enabled(stream: Any = None) -> bool:
    """Whether a bar would be drawn on ``stream`` (stderr by default): a TTY, unless MLEXP_PROGRESS says otherwise."""
    forced = os.environ.get("MLEXP_PROGRESS", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress(
    iterable: Optional[Iterable] = None,
    *,
    total: Optional[int] = None,
    desc: Optional[str] = None,
    unit: str = "it",
    leave: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A ``tqdm`` bar over ``iterable`` (or a manual one with ``total``), drawn only on a terminal.

    ``leave=False`` clears the bar when it ends. While the bar is drawn, log records go
    through ``tqdm.write`` (above the bar) instead of being written into its line.
    Extra keyword arguments go to ``tqdm`` (``position``, ``postfix``, ...).
    """
    return _Bar(
        iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
        disable=not progress_enabled(sys.stderr), dynamic_ncols=True, **kwargs,
    )


class _Bar(tqdm):
    """tqdm that keeps console log lines off the bar's line while it is drawn."""

    def __iter__(self) -> Iterator[Any]:
        if self.disable:
            yield from super().__iter__()
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm(tqdm_class=tqdm):
            yield from super().__iter__()

    def __enter__(self) -> "_Bar":
        if not self.disable:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm(tqdm_class=tqdm)
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        redirect = getattr(self, "_redirect", None)
        if redirect is not None:
            redirect.__exit__(*exc)
        return super().__exit__(*exc)
