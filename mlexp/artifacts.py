"""Save and load fitted models safely: skops files (no pickle), with a JSON card beside them."""

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from mlexp.errors import MlexpError
from mlexp.neural import TORCH_SPEC_FILE, holds_torch_estimator, is_torch_estimator  # lazy: no torch import

__all__ = ["save_model", "load_model", "check_model_file", "skops_io", "MODEL_FILE", "CARD_FILE"]

MODEL_FILE = "model.skops"
CARD_FILE = "model.json"
# Types a model file may hold: those from these packages load without a prompt. Not builtins or
# functools: a tampered file could make a FunctionTransformer call builtins.exec on the input.
TRUSTED_PREFIXES = ("sklearn.", "imblearn.", "mlexp.", "numpy.", "scipy.")
# scikit-learn's array-API shims for other array libraries. Importing skops.io lists every
# scikit-learn estimator by walking all of scikit-learn's packages, and that walk imports these
# shims, which import the library itself (torch: about 1.5 s). No estimator lives there.
ARRAY_API_SHIMS = tuple(f"sklearn.externals.array_api_compat.{lib}" for lib in ("torch", "cupy", "dask", "jax"))


def save_model(model: Any, directory: Path, card: Dict[str, Any]) -> Path:
    """Write ``model.skops`` and ``model.json`` (task, classes, feature columns, roles)."""
    sio = skops_io()

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    steps = getattr(model, "steps", None)
    if steps and is_torch_estimator(steps[-1][1]):
        # A PyTorch model is saved apart as a state dict + rebuild spec; skops keeps the steps before it.
        from mlexp.neural import save_torch_model

        save_torch_model(steps[-1][1], directory)
        model = model[:-1]
    elif holds_torch_estimator(model):
        raise MlexpError("PyTorch models inside an ensemble cannot be saved yet (only a pipeline ending in "
                         "model=mlp or model=torch_linear is). Run with save_model=false.")
    sio.dump(model, path)
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
    return path


def check_model_file(directory: Path) -> List[str]:
    """The types beyond skops' defaults that a run's model file holds, all from trusted packages;
    MlexpError for a missing or unreadable file or any other type (checked without loading it)."""
    import zipfile

    sio = skops_io()

    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise MlexpError(f"no {MODEL_FILE} in {directory}: point mode.run_dir at a train run's directory.")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as err:
        raise MlexpError(f"{path} is not a readable skops model file ({type(err).__name__}: {err}): "
                         "it was damaged or replaced; train the run again.") from err
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise MlexpError(f"{path} holds types mlexp does not trust: {', '.join(refused)}. Load it with skops by hand.")
    return untrusted


def load_model(directory: Path) -> Tuple[Any, Dict[str, Any]]:
    """Load a run's model, trusting only types from known libraries (skops refuses the rest)."""
    sio = skops_io()

    path = Path(directory) / MODEL_FILE
    model = sio.load(path, trusted=check_model_file(directory))
    if (Path(directory) / TORCH_SPEC_FILE).is_file():
        from mlexp.neural import load_torch_model

        model.steps.append(("model", load_torch_model(Path(directory))))
    card_path = Path(directory) / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return model, card


def skops_io() -> Any:
    """``skops.io``, imported without the array libraries scikit-learn's shims would pull in.

    While skops.io is first imported, the shims not yet loaded are marked missing, so that
    Python's package walk skips them (it ignores packages that fail to import); they import
    normally afterwards. A shim already loaded (a PyTorch run) is left as it is.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    hidden = [name for name in ARRAY_API_SHIMS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import skops.io
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return skops.io
