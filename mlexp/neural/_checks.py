"""The training rules' conditions (SageMaker Debugger's built-in rules, one signal each), on per-epoch records.

Each rule reads one signal, so that a broken configuration triggers the rule that names its cause
and no other: too-small gradients are vanishing_gradient's, a loss that does not fall is
loss_not_decreasing's, non-finite values are exploding_tensor's (the other rules skip non-finite
epochs). A rule fires at most once per fit. No torch import: records are plain numbers.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

__all__ = ["RULES", "ADVICE", "EpochRecord", "check_epoch", "check_start", "validate_rules"]

# Each rule's thresholds and their defaults (conf/rules/<name>.yaml gives the same values).
RULES: Dict[str, Dict[str, Any]] = {
    "loss_not_decreasing": {"window": 10, "min_decrease": 0.01},
    "overfit": {"start_epoch": 5, "ratio_threshold": 0.25, "patience": 3},
    "overtraining": {"patience": 20, "min_delta": 0.0},
    "vanishing_gradient": {"threshold": 1e-7, "ratio": 1e-4, "patience": 3},
    "exploding_tensor": {},
    "dead_relu": {"threshold_layer": 0.5, "start_epoch": 2, "patience": 3},
    "saturated_activation": {"threshold_layer": 0.5, "margin": 0.01, "patience": 3},
    "poor_weight_initialization": {"threshold": 10.0},
    "weight_update_ratio": {"large_threshold": 10.0, "small_threshold": None, "start_epoch": 2},
    "class_imbalance": {"threshold_imbalance": 10.0},
}
ACTIONS = ("warn", "stop")
ADVICE = {
    "loss_not_decreasing": "check the learning rate (optimizer.lr) and that the features carry signal",
    "overfit": "regularize (model.dropout, model.l1, optimizer.weight_decay), use a smaller net or more data",
    "overtraining": "turn on early stopping (model.early_stopping=true) or lower model.max_epochs",
    "vanishing_gradient": "use relu activations, fewer layers, or a standard initialization",
    "exploding_tensor": "lower the learning rate (optimizer.lr), standardize the features, or clip gradients",
    "dead_relu": "lower the learning rate, or use model.activation=leaky_relu",
    "saturated_activation": "standardize the features, lower the learning rate, or use model.activation=relu",
    "poor_weight_initialization": "initialize every layer on the same scale (e.g. PyTorch's default)",
    "weight_update_ratio": "lower the learning rate (optimizer.lr)",
    "class_imbalance": "add sampler=smote or sampler=random_over, or choose objective.metric=f1",
}


@dataclass
class EpochRecord:
    epoch: int
    train_loss: Optional[float] = None
    valid_loss: Optional[float] = None
    grad_mean_abs: Dict[str, Optional[float]] = field(default_factory=dict)
    weight_norm: Dict[str, float] = field(default_factory=dict)
    update_ratio: Dict[str, float] = field(default_factory=dict)
    dead_share: Dict[str, float] = field(default_factory=dict)
    saturated_share: Dict[str, float] = field(default_factory=dict)
    nonfinite: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, [])} | {"epoch": self.epoch}


def validate_rules(rules: Dict[str, Any]) -> List[str]:
    """Problems with a `rules` node (unknown rule or setting, bad action), as messages."""
    problems = []
    for name, settings in (rules or {}).items():
        if name not in RULES:
            problems.append(f"rules: {name!r} is not a rule; rules: {', '.join(RULES)}")
            continue
        for key in settings or {}:
            if key != "action" and key not in RULES[name]:
                problems.append(f"rules.{name}.{key} is not a setting of {name}; settings: action, "
                                f"{', '.join(RULES[name]) or '(none)'}")
        if (settings or {}).get("action", "warn") not in ACTIONS:
            problems.append(f"rules.{name}.action={settings['action']!r}: use warn or stop")
    return problems


def _settings(rules: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    if name not in rules:
        return None
    return {**RULES[name], "action": "warn", **(rules[name] or {})}


def _finding(name: str, settings: Dict[str, Any], message: str) -> Dict[str, Any]:
    return {"rule": name, "action": settings["action"], "message": message}


def check_start(rules: Dict[str, Any], initial: List[Dict[str, Any]], class_counts: Optional[List[int]]
                ) -> List[Dict[str, Any]]:
    """Rules on the state before training: poor_weight_initialization, class_imbalance."""
    out = []
    settings = _settings(rules, "poor_weight_initialization")
    if settings and initial:
        gains = {layer["layer"]: layer["std"] ** 2 * layer["fan_in"] for layer in initial}
        flat = [name for name, gain in gains.items() if gain == 0]
        spread = max(gains.values()) / min(gains.values()) if not flat else math.inf
        if flat or spread > settings["threshold"]:
            detail = (f"layer(s) {', '.join(flat)} start with identical weights (every unit the same)" if flat else
                      f"the layers' initial weight scales (variance x fan-in) differ {spread:.1f}-fold "
                      f"(limit {settings['threshold']:g})")
            out.append(_finding("poor_weight_initialization", settings, detail))
    settings = _settings(rules, "class_imbalance")
    if settings and class_counts:
        present = [c for c in class_counts if c > 0]
        ratio = max(present) / min(present) if present else 1.0
        if ratio > settings["threshold_imbalance"]:
            out.append(_finding("class_imbalance", settings, f"the largest class has {ratio:.1f}x the rows of the "
                                f"smallest (counts {class_counts}; limit {settings['threshold_imbalance']:g}x)"))
    return out


def check_epoch(rules: Dict[str, Any], record: EpochRecord, state: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Rules on one epoch's record; ``state`` carries running values (first loss, best validation loss...)."""
    fired = state.setdefault("fired", set())
    finite = not record.nonfinite
    out = []
    for name, check in _EPOCH_CHECKS.items():
        settings = _settings(rules, name)
        if settings is None or name in fired or (not finite and name != "exploding_tensor"):
            continue
        message = check(settings, record, state.setdefault(name, {}))
        if message:
            fired.add(name)
            out.append(_finding(name, settings, message))
    return out


def _loss_not_decreasing(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
    if r.train_loss is None:
        return None
    state.setdefault("first", r.train_loss)
    if r.epoch != s["window"]:
        return None
    first = state["first"]
    if r.train_loss > first - s["min_decrease"] * abs(first):
        return (f"the training loss went from {first:.4g} (epoch 1) to {r.train_loss:.4g} (epoch {r.epoch}): "
                f"less than the {s['min_decrease']:.0%} decrease required over {s['window']} epochs")
    return None


def _best_valid(r: EpochRecord, state: Dict[str, Any]) -> None:
    if r.valid_loss is not None and r.valid_loss < state.get("best", math.inf):
        state.update(best=r.valid_loss, best_epoch=r.epoch, train_at_best=r.train_loss)


def _overfit(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
    if r.valid_loss is None or r.train_loss is None:
        return None
    _best_valid(r, state)
    # The validation loss rose above its best AND stands above the training loss (a growing gap), while
    # the training loss kept falling: both by ratio_threshold, so that noise on small losses does not count.
    rising = (r.epoch >= s["start_epoch"] and r.valid_loss > state["best"] * (1 + s["ratio_threshold"])
              and r.valid_loss > r.train_loss * (1 + s["ratio_threshold"]) and r.train_loss < state["train_at_best"])
    state["count"] = state.get("count", 0) + 1 if rising else 0
    if state["count"] >= s["patience"]:
        return (f"the validation loss rose to {r.valid_loss:.4g}, {r.valid_loss / state['best'] - 1:.0%} above its "
                f"best {state['best']:.4g} (epoch {state['best_epoch']}), while the training loss kept falling "
                f"(to {r.train_loss:.4g})")
    return None


def _overtraining(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
    if r.valid_loss is None or r.train_loss is None:
        return None
    if r.valid_loss < state.get("best", math.inf) - s["min_delta"]:
        state.update(best=r.valid_loss, best_epoch=r.epoch, train_at_best=r.train_loss)
    if r.epoch - state["best_epoch"] >= s["patience"] and r.train_loss < state["train_at_best"]:
        return (f"the validation loss has not improved for {r.epoch - state['best_epoch']} epochs (best "
                f"{state['best']:.4g} at epoch {state['best_epoch']}) while training went on")
    return None


def _vanishing_gradient(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
    grads = {k: v for k, v in r.grad_mean_abs.items() if v is not None}
    if len(grads) == 0:
        return None
    smallest = min(grads, key=grads.get)
    largest = max(grads.values())
    tiny = grads[smallest] < s["threshold"] and (r.train_loss is None or r.train_loss > 1e-3)
    relative = len(grads) > 1 and largest > 0 and grads[smallest] < s["ratio"] * largest
    state["count"] = state.get("count", 0) + 1 if tiny or relative else 0
    if state["count"] >= s["patience"]:
        return (f"layer {smallest}'s mean |gradient| is {grads[smallest]:.3g}"
                + (f", {grads[smallest] / largest:.2g} of the largest layer's" if relative else "")
                + f" (limits {s['threshold']:g} absolute, {s['ratio']:g} relative)")
    return None


def _exploding_tensor(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
    if r.nonfinite:
        return "non-finite values (NaN or infinity) in " + ", ".join(r.nonfinite)
    return None


def _share_rule(shares: Callable[[EpochRecord], Dict[str, float]], what: str) -> Callable:
    def check(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
        high = {k: v for k, v in shares(r).items() if v >= s["threshold_layer"]}
        started = r.epoch >= s.get("start_epoch", 1)
        state["count"] = state.get("count", 0) + 1 if high and started else 0
        if state["count"] >= s["patience"]:
            return (f"{', '.join(f'{v:.0%} of layer {k}' for k, v in high.items())} {what} "
                    f"(limit {s['threshold_layer']:.0%} of a layer, {s['patience']} epochs in a row)")
        return None

    return check


def _weight_update_ratio(s: Dict[str, Any], r: EpochRecord, state: Dict[str, Any]) -> Optional[str]:
    if r.epoch < s["start_epoch"]:
        return None
    for layer, ratio in r.update_ratio.items():
        if ratio > s["large_threshold"]:
            return (f"layer {layer}'s weights changed by {ratio:.3g}x their norm in one epoch "
                    f"(limit {s['large_threshold']:g})")
        # A ratio of exactly 0 (frozen weights, lr=0) is loss_not_decreasing's case, not an update-size one.
        if s["small_threshold"] is not None and 0 < ratio < s["small_threshold"]:
            return (f"layer {layer}'s weights changed by only {ratio:.3g}x their norm in one epoch "
                    f"(limit {s['small_threshold']:g})")
    return None


_EPOCH_CHECKS: Dict[str, Callable[[Dict[str, Any], EpochRecord, Dict[str, Any]], Optional[str]]] = {
    "exploding_tensor": _exploding_tensor,
    "loss_not_decreasing": _loss_not_decreasing,
    "overfit": _overfit,
    "overtraining": _overtraining,
    "vanishing_gradient": _vanishing_gradient,
    "dead_relu": _share_rule(lambda r: r.dead_share, "are dead ReLU units (zero for every probe row)"),
    "saturated_activation": _share_rule(lambda r: r.saturated_share, "sit at a tanh/sigmoid bound (share of units x probe rows)"),
    "weight_update_ratio": _weight_update_ratio,
}
