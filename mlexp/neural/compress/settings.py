"""Check a `compress` option before anything is trained or loaded: every bad value named with its fix."""

from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["check_settings", "METHODS", "is_torch_option"]

METHODS = ("prune", "quantize", "distill")
APPROACHES = ("dynamic", "static")


def check_settings(node: DictConfig) -> Dict[str, Any]:
    """The option as plain values, after checking each of its keys (no torch import)."""
    settings = OmegaConf.to_container(node, resolve=True)
    method = settings.get("method")
    if method not in METHODS:
        raise MlexpError(f"compress.method={method!r}: choose an option, compress=prune, prune_structured, "
                         "quantize or distill (docs/compress.md).")
    latency = settings.get("latency") or {}
    for key in ("batch_rows", "repeats"):
        _positive_int(latency.get(key, 1), f"compress.latency.{key}")
    if method == "prune":
        _check_prune(settings)
    elif method == "quantize":
        if settings.get("approach") not in APPROACHES:
            raise MlexpError(f"compress.approach={settings.get('approach')!r}: use dynamic or static.")
        _positive_int(settings.get("calibration_rows", 1000), "compress.calibration_rows")
    else:
        _check_distill(settings)
    return settings


def is_torch_option(model_node: Any) -> bool:
    """True for a model option that builds one of mlexp's PyTorch nets (model=mlp, torch_linear)."""
    return str((model_node or {}).get("_target_", "")).startswith("mlexp.neural")


def _check_prune(settings: Dict[str, Any]) -> None:
    sparsity = settings.get("sparsity")
    if not isinstance(sparsity, (int, float)) or isinstance(sparsity, bool) or not 0 < sparsity < 1:
        raise MlexpError(f"compress.sparsity={sparsity!r}: the fraction of weights set to zero, in (0, 1) (e.g. 0.9).")
    if settings.get("scope") not in ("global", "layer"):
        raise MlexpError(f"compress.scope={settings.get('scope')!r}: use global (one threshold over all layers) or layer.")
    target = (settings.get("pruning_method") or {}).get("_target_", "")
    structured = _check_pruning_class(target)
    if structured and settings["scope"] == "global":
        raise MlexpError(f"{target} is structured, and torch.nn.utils.prune prunes only single weights globally. "
                         "Use compress.scope=layer (compress=prune_structured sets it).")
    schedule = settings.get("schedule") or {}
    _positive_int(schedule.get("steps", 1), "compress.schedule.steps")
    if schedule.get("kind", "cubic") not in ("cubic", "linear"):
        raise MlexpError(f"compress.schedule.kind={schedule.get('kind')!r}: use cubic or linear.")
    epochs = settings.get("fine_tune_epochs", 0)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise MlexpError(f"compress.fine_tune_epochs={epochs!r}: use 0 (no fine-tuning) or a positive number.")
    lr = settings.get("fine_tune_lr")
    if lr is not None and (not isinstance(lr, (int, float)) or lr <= 0):
        raise MlexpError(f"compress.fine_tune_lr={lr!r}: a positive learning rate, or null for the optimizer's.")


def _check_pruning_class(target: str) -> bool:
    """Whether the torch.nn.utils.prune method ``target`` is structured; refuses anything else."""
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception as err:
        raise MlexpError(f"compress.pruning_method._target_={target!r} cannot be imported ({err}). Use "
                         "torch.nn.utils.prune.L1Unstructured, RandomUnstructured, LnStructured or RandomStructured.") from err
    from torch.nn.utils.prune import BasePruningMethod

    if not (isinstance(cls, type) and issubclass(cls, BasePruningMethod)) or cls.PRUNING_TYPE not in ("unstructured", "structured"):
        raise MlexpError(f"compress.pruning_method._target_={target!r} is not a torch.nn.utils.prune method that prunes "
                         "by amount (L1Unstructured, RandomUnstructured, LnStructured, RandomStructured).")
    return cls.PRUNING_TYPE == "structured"


def _check_distill(settings: Dict[str, Any]) -> None:
    temperature, alpha = settings.get("temperature"), settings.get("alpha")
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise MlexpError(f"compress.temperature={temperature!r}: a positive temperature (1: the teacher's "
                         "probabilities as they are; 2-8 soften them).")
    if not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise MlexpError(f"compress.alpha={alpha!r}: the soft labels' weight, in [0, 1].")
    student = settings.get("student") or {}
    if not is_torch_option(student):
        raise MlexpError(f"compress.student is {student.get('_target_')}: the student is trained by gradient steps on "
                         "soft labels, so it must be a PyTorch model option (model@compress.student=mlp or torch_linear).")
    _positive_int(student.get("max_epochs", 1), "compress.student.max_epochs")


def _positive_int(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MlexpError(f"{key}={value!r}: use a positive whole number.")
    return value
