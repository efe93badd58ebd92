"""Training rules for PyTorch models (SageMaker Debugger's built-in rules): a skorch callback that records, per epoch,
what the rules read, and fires a rule's action (warn, or stop training) when its condition holds.

Recorded per epoch, never per batch: training/validation loss; per Linear layer the mean |gradient|
of the epoch's last training batch (skorch keeps it in ``.grad`` until the next step), the weight
norm and the weight-update ratio; dead ReLU and saturated tanh/sigmoid shares from one forward pass
over a fixed probe of at most PROBE_ROWS training rows (hooks set for that pass only); non-finite
values anywhere. Each fit (every CV fold and the final fit) is recorded for the run's
diagnostics.json (mlexp.neural.diagnostics); the rules themselves are in mlexp.neural._checks.
"""

import math
import weakref
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from skorch.callbacks import Callback

from mlexp.neural._callbacks import StopTraining
from mlexp.neural._checks import EpochRecord, check_epoch, check_start

__all__ = ["TrainingRules", "rules_params", "fits_for", "PROBE_ROWS", "HISTOGRAM_BINS"]

PROBE_ROWS = 128
HISTOGRAM_BINS = 30
_SATURATING = (torch.nn.Tanh, torch.nn.Sigmoid)
# Fits recorded while a run's reporter was active, per reporter (a run's diagnostics step reads them).
_FITS: "weakref.WeakKeyDictionary[Any, List[Dict[str, Any]]]" = weakref.WeakKeyDictionary()


def rules_params(cfg: Any) -> Dict[str, Any]:
    """The nets' ``rules`` and ``rule_histograms`` parameters from ``cfg``: the selected rules (None when `rules=[]`),
    and whether to keep weight histograms (for TensorBoard). The net adds a fresh TrainingRules per fit."""
    node = cfg.get("rules") if cfg is not None else None
    if not node:
        return {"rules": None, "rule_histograms": False}
    from omegaconf import OmegaConf

    tracking = cfg.get("tracking")
    histograms = bool(tracking) and str(tracking.get("_target_") or "").endswith("TensorBoardTracker")
    return {"rules": OmegaConf.to_container(node, resolve=True), "rule_histograms": histograms}


def fits_for(reporter: Any) -> List[Dict[str, Any]]:
    """The recorded fits of the run whose reporter is ``reporter``, in fitting order."""
    return _FITS.get(reporter, []) if reporter is not None else []


class TrainingRules(Callback):
    """Record per-epoch training signals and apply the configured rules.

    Args:
        rules: {rule name: {"action": "warn"|"stop", threshold: value, ...}}; names from mlexp.neural._checks.RULES.
        histograms: also keep per-epoch weight and gradient histograms (for TensorBoard).
    """

    def __init__(self, rules: Optional[Dict[str, Dict[str, Any]]] = None, histograms: bool = False):
        self.rules = rules
        self.histograms = histograms

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        from mlexp.reporting.reporter import active_reporter

        self.reporter_, fold = active_reporter()
        self.fit_ = {"fit": "final fit" if fold is None else f"fold {fold}", "epochs": [], "findings": [],
                     "stopped": None, "histograms": [] if self.histograms else None}
        # Named as in the module (MLP: "0", "2", ...); a module that is itself the layer (torch_linear) by its class.
        modules = [(n or type(m).__name__, m) for n, m in net.module_.named_modules()]
        self.layers_ = [(n, m) for n, m in modules if isinstance(m, torch.nn.Linear)]
        self.activations_ = [(n, m) for n, m in modules if isinstance(m, (torch.nn.ReLU,) + _SATURATING)]
        self.probe_ = _probe(X, net.device)
        self.previous_ = [m.weight.detach().clone() for _, m in self.layers_]
        self.state_: Dict[str, Any] = {}
        counts = None
        if y is not None and getattr(net, "task", None) == "classification":
            counts = np.bincount(np.asarray(y, dtype=np.int64).reshape(-1)).tolist()
        self.fit_["class_counts"] = counts
        self.fit_["initial"] = [{"layer": n, "fan_in": int(m.weight.shape[1]), "std": float(m.weight.detach().std())}
                                for n, m in self.layers_]
        self.pending_start_ = check_start(self.rules or {}, self.fit_["initial"], counts)

    def on_epoch_begin(self, net, **kwargs):
        # Rules on the initial state are applied here, inside skorch's training loop, so that `stop` ends it.
        findings, self.pending_start_ = self.pending_start_, []
        self._apply(findings, epoch=1)

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        # A non-finite training loss ends the fit whatever the action, as nothing can be learned past it and
        # scoring the epoch would fail. Read from the epoch's recorded train_loss when validation begins: no
        # per-batch hook on training batches (each would add GPU kernel launches to every step).
        if not training:
            self._stop_on_nonfinite_loss(net)

    def _stop_on_nonfinite_loss(self, net) -> None:
        loss = net.history[-1].get("train_loss") if len(net.history) else None
        if loss is None or math.isfinite(loss) or self.fit_["stopped"] is not None:
            return
        epoch = len(net.history)
        finding = {"rule": "exploding_tensor", "action": "stop", "epoch": epoch,
                   "message": f"the training loss became {loss} during epoch {epoch}"}
        if "exploding_tensor" in (self.rules or {}):
            self._apply([finding], epoch)
        self.fit_["stopped"] = {k: finding[k] for k in ("rule", "epoch", "message")}
        raise StopTraining(finding["message"])  # ends this fit only; Ctrl-C (KeyboardInterrupt) ends the run

    def on_epoch_end(self, net, **kwargs):
        self._stop_on_nonfinite_loss(net)  # a fit without validation rows: checked here
        row = net.history[-1]
        record = EpochRecord(epoch=int(row["epoch"]), train_loss=_number(row.get("train_loss")),
                             valid_loss=_number(row.get("valid_loss")))
        for (name, layer), before in zip(self.layers_, self.previous_):
            weight = layer.weight.detach()
            grad = layer.weight.grad
            record.weight_norm[name] = float(weight.norm())
            record.grad_mean_abs[name] = float(grad.abs().mean()) if grad is not None else None
            record.update_ratio[name] = float((weight - before).norm() / (before.norm() + 1e-12))
            if not bool(torch.isfinite(weight).all()):
                record.nonfinite.append(f"weights of {name}")
            if grad is not None and not bool(torch.isfinite(grad).all()):
                record.nonfinite.append(f"gradients of {name}")
        if self.histograms:
            self.fit_["histograms"].append(_histograms(record.epoch, self.layers_))
        self.previous_ = [m.weight.detach().clone() for _, m in self.layers_]
        self._probe_activations(net, record)
        for key in ("train_loss", "valid_loss"):
            value = getattr(record, key)
            if value is not None and not math.isfinite(value):
                record.nonfinite.append(key)
        self.fit_["epochs"].append(record.as_dict())
        self._apply(check_epoch(self.rules or {}, record, self.state_), record.epoch)

    def on_train_end(self, net, **kwargs):
        reporter = getattr(self, "reporter_", None)
        if reporter is not None:
            _FITS.setdefault(reporter, []).append(self.fit_)
        # After early stopping has restored its best weights (it runs first): weights still non-finite
        # cannot predict anything, so the run stops here with the cause rather than at scoring.
        broken = [n for n, m in self.layers_ if not bool(torch.isfinite(m.weight).all())]
        if broken:
            from mlexp.errors import MlexpError

            raise MlexpError(
                f"training diverged ({self.fit_['fit']}): the weights of layer(s) {', '.join(broken)} are NaN or "
                "infinite (training rule exploding_tensor), so the model cannot predict. Lower the learning rate "
                "(optimizer.lr), standardize the features (features=[standardize]), or use optimizer=adam.")

    def _probe_activations(self, net: Any, record: EpochRecord) -> None:
        if self.probe_ is None or not self.activations_:
            return
        outputs: Dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(lambda m, i, o, n=name: outputs.__setitem__(n, o.detach()))
                 for name, module in self.activations_]
        training = net.module_.training
        try:
            net.module_.eval()
            with torch.no_grad():
                net.module_(self.probe_)
        finally:
            for hook in hooks:
                hook.remove()
            net.module_.train(training)
        for name, module in self.activations_:
            value = outputs.get(name)
            if value is None:
                continue
            if not bool(torch.isfinite(value).all()):
                record.nonfinite.append(f"activations of {name}")
                continue
            if isinstance(module, torch.nn.ReLU):
                record.dead_share[name] = float((value <= 0).all(dim=0).float().mean())
            else:
                low, high = (-1.0, 1.0) if isinstance(module, torch.nn.Tanh) else (0.0, 1.0)
                margin = float((self.rules or {}).get("saturated_activation", {}).get("margin", 0.01))
                saturated = (value <= low + margin) | (value >= high - margin)
                record.saturated_share[name] = float(saturated.float().mean())  # of all unit x row values

    def _apply(self, findings: List[Dict[str, Any]], epoch: int) -> None:
        for finding in findings:
            finding.setdefault("epoch", epoch)
            finding["fit"] = self.fit_["fit"]
            self.fit_["findings"].append(finding)
        stop = [f for f in findings if f["action"] == "stop"]
        if stop and self.fit_["stopped"] is None:
            self.fit_["stopped"] = {"rule": stop[0]["rule"], "epoch": stop[0]["epoch"], "message": stop[0]["message"]}
            raise StopTraining(stop[0]["message"])  # ends this fit only, as early stopping does


def _probe(X: Any, device: Any) -> Optional[torch.Tensor]:
    if X is None:
        return None
    if not isinstance(X, torch.Tensor):
        X = torch.as_tensor(np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32))
    rows = np.unique(np.linspace(0, len(X) - 1, min(PROBE_ROWS, len(X))).astype(int))
    return X[torch.as_tensor(rows)].float().to(device)


def _histograms(epoch: int, layers: List[tuple]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"epoch": epoch, "weights": {}, "gradients": {}}
    for name, layer in layers:
        for kind, tensor in (("weights", layer.weight.detach()), ("gradients", layer.weight.grad)):
            if tensor is None or not bool(torch.isfinite(tensor).all()):
                continue
            values = tensor.detach().float().cpu().reshape(-1)
            counts, edges = torch.histogram(values, bins=HISTOGRAM_BINS)
            out[kind][name] = {"counts": counts.tolist(), "edges": edges.tolist(), "sum": float(values.sum()),
                               "sum_squares": float((values ** 2).sum()), "min": float(values.min()),
                               "max": float(values.max()), "n": int(values.numel())}
    return out


def _number(value: Any) -> Optional[float]:
    return None if value is None else float(value)

