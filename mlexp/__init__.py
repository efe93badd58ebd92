"""mlexp: declarative ML experiments composed from Hydra config groups."""

from typing import TYPE_CHECKING, Any

__all__ = ["run", "MlexpError", "__version__"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlexp.errors import MlexpError
    from mlexp.experiment import run


def __getattr__(name: str) -> Any:
    # Lazy so that `mlexp --help` and `--cfg job` never import scikit-learn.
    if name == "run":
        from mlexp.experiment import run

        return run
    if name == "MlexpError":
        from mlexp.errors import MlexpError

        return MlexpError
    raise AttributeError(f"module 'mlexp' has no attribute {name!r}")
