"""Magnitude pruning of a net's Linear layers with torch.nn.utils.prune: one shot or gradual, fine-tuned, made permanent."""

import logging
from typing import Any, Callable, Dict, List

import torch
from torch.nn.utils import prune

from mlexp.errors import MlexpError

__all__ = ["prune_net", "sparsity_schedule"]

log = logging.getLogger("mlexp")


def sparsity_schedule(target: float, steps: int, kind: str) -> List[float]:
    """The sparsity reached after each step: cubic ``s (1 - (1 - t/n)^3)`` (Zhu and Gupta, 2017) or linear ``s t/n``."""
    if kind == "cubic":
        return [target * (1 - (1 - t / steps) ** 3) for t in range(1, steps + 1)]
    return [target * t / steps for t in range(1, steps + 1)]


def prune_net(net: Any, settings: Dict[str, Any], fine_tune: Callable[[int], List[float]]) -> Dict[str, Any]:
    """Prune ``net.module_`` in place to ``settings['sparsity']``; ``fine_tune(step)`` trains after each step.

    Unstructured methods prune every Linear layer's weights; structured ones (whole neurons)
    prune the hidden layers only (a row of the output layer is a class) and the MLP is then
    rebuilt without the removed neurons. Returns what was done, step by step.
    """
    from hydra.utils import get_class

    method = dict(settings["pruning_method"])
    cls = get_class(method.pop("_target_"))
    structured = cls.PRUNING_TYPE == "structured"
    layers = [m for m in net.module_.modules() if isinstance(m, torch.nn.Linear)]
    targets = layers[:-1] if structured else layers
    if not targets:
        raise MlexpError(f"{cls.__name__} removes hidden neurons, and this model has no hidden layer "
                         "(model=torch_linear). Use compress=prune (single weights) instead.")
    steps = []
    reached = 0.0
    for step, target in enumerate(sparsity_schedule(settings["sparsity"], settings["schedule"]["steps"],
                                                    settings["schedule"]["kind"])):
        amount = (target - reached) / (1 - reached)  # torch prunes a fraction of the weights still left
        if settings["scope"] == "global":
            prune.global_unstructured([(m, "weight") for m in targets], pruning_method=cls, amount=amount, **method)
        else:
            for layer in targets:
                cls.apply(layer, "weight", amount=amount, **method)
        losses = fine_tune(step)
        measured = _sparsity(targets)
        steps.append({"target": round(target, 6), "sparsity": round(measured, 6),
                      "fine_tune_loss": round(losses[-1], 6) if losses else None})
        log.info("compress: pruning step %d: sparsity %.4f of the pruned weights", step + 1, measured)
        reached = target
    for layer in targets:
        prune.remove(layer, "weight")
    info = {"pruned_layers": len(targets), "weights_sparsity": _sparsity(targets), "steps": steps}
    if structured:
        info["hidden_sizes"] = _drop_dead_neurons(net)
    return info


def _sparsity(layers: List[torch.nn.Linear]) -> float:
    total = sum(layer.weight.numel() for layer in layers)
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
    return zeros / total if total else 0.0


def _drop_dead_neurons(net: Any) -> List[int]:
    """Rebuild the MLP without its pruned neurons; returns the new hidden sizes.

    A pruned neuron's weights are zero but its bias is not, so it outputs the constant
    ``activation(bias)``: that constant is folded into the next layer's bias, and the
    smaller network computes exactly what the masked one did.
    """
    module = net.module_
    if not isinstance(module, torch.nn.Sequential):
        raise MlexpError(f"structured pruning rebuilds an MLP; {type(module).__name__} is not one.")
    items = list(module)
    linear = [i for i, m in enumerate(items) if isinstance(m, torch.nn.Linear)]
    weights = [items[i].weight.detach().clone() for i in linear]
    biases = [items[i].bias.detach().clone() for i in linear]
    sizes = []
    with torch.no_grad():
        for k in range(len(linear) - 1):
            alive = weights[k].abs().sum(1) > 0
            if not alive.any():
                alive[int(biases[k].abs().argmax())] = True
            activation = _activation_after(items, linear[k], linear[k + 1])
            dead_out = activation(biases[k][~alive])
            biases[k + 1] += weights[k + 1][:, ~alive] @ dead_out
            weights[k], biases[k] = weights[k][alive], biases[k][alive]
            weights[k + 1] = weights[k + 1][:, alive]
            sizes.append(int(alive.sum()))
    net.set_params(module__hidden_sizes=sizes)  # skorch builds a new module of these sizes
    new_linear = [m for m in net.module_.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, weight, bias in zip(new_linear, weights, biases):
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    net.module_.eval()
    return sizes


def _activation_after(items: List[torch.nn.Module], start: int, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layers between two Linear layers (activation; dropout is the identity at inference)."""
    between = [m for m in items[start + 1:end] if not isinstance(m, torch.nn.Dropout)]

    def apply(x: torch.Tensor) -> torch.Tensor:
        for layer in between:
            x = layer(x)
        return x

    return apply
