"""Knowledge distillation: a small PyTorch student trained on a teacher's softened probabilities and the hard labels."""

import copy
import logging
from typing import Any, Callable, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from mlexp.errors import MlexpError

__all__ = ["distill", "distillation_loss", "soft_targets"]

log = logging.getLogger("mlexp")


def soft_targets(probabilities: np.ndarray, temperature: float) -> torch.Tensor:
    """The teacher's probabilities at temperature T: ``softmax(log p / T)`` (for a net's softmax, the same as
    ``softmax(logits / T)``), so any model with predict_proba can teach."""
    logits = torch.log(torch.as_tensor(np.clip(probabilities, 1e-8, 1.0), dtype=torch.float32))
    return F.softmax(logits / temperature, dim=1)


def distillation_loss(temperature: float, alpha: float, task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Hinton et al. (2015): ``alpha T^2 KL(teacher_T || student_T) + (1 - alpha) CE(student, y)``.

    Targets are one tensor per row: the hard label, then the teacher's soft probabilities
    (regression: the target, then the teacher's prediction, both standardized; MSE for both terms).
    """
    T = float(temperature)

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if task == "regression":
            return alpha * F.mse_loss(outputs, targets[:, 1:]) + (1 - alpha) * F.mse_loss(outputs, targets[:, :1])
        hard = F.cross_entropy(outputs, targets[:, 0].long())
        if alpha == 0:
            return hard
        soft = F.kl_div(F.log_softmax(outputs / T, dim=1), targets[:, 1:], reduction="batchmean")
        return alpha * T * T * soft + (1 - alpha) * hard

    return loss


def distill(teacher: Any, student: Any, X_raw: Any, X: torch.Tensor, y: np.ndarray, settings: Dict[str, Any],
            optimizer: Dict[str, Any], epochs: int, seed: int, task: str) -> Tuple[Any, Any, Dict[str, Any]]:
    """Train ``student`` (an initialized net) on the teacher's soft labels, and its twin on the hard labels only.

    Both start from the same initial weights and see the same batches in the same order for
    the same epochs: they differ only in their targets. Returns (distilled, hard-label, info).
    """
    from mlexp.neural.continual.loop import Trainer

    temperature, alpha = float(settings["temperature"]), float(settings["alpha"])
    twin = copy.deepcopy(student)
    if task == "classification":
        if not hasattr(teacher, "predict_proba"):
            raise MlexpError(f"the teacher ({type(teacher.steps[-1][1]).__name__}) gives no class probabilities, so "
                             "it has no soft labels to teach. Use a teacher with predict_proba (svm needs "
                             "model.probability=true).")
        probabilities = teacher.predict_proba(X_raw)
        hard = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1, 1)
        targets = torch.cat([hard, soft_targets(probabilities, temperature)], dim=1)
        twin_targets = torch.as_tensor(np.asarray(y, dtype=np.int64))
        twin_loss: Callable = F.cross_entropy
        agreement = float(np.mean(probabilities.argmax(1) == np.asarray(y)))
    else:
        scaled = (np.asarray(y, dtype=np.float32) - student.y_mean_) / student.y_scale_
        taught = (np.asarray(teacher.predict(X_raw), dtype=np.float32) - student.y_mean_) / student.y_scale_
        targets = torch.as_tensor(np.stack([scaled, taught], axis=1))
        twin_targets = torch.as_tensor(scaled.reshape(-1, 1))
        twin_loss = F.mse_loss
        agreement = None
    losses = Trainer(student.module_, distillation_loss(temperature, alpha, task), optimizer, epochs,
                     seed=seed, task=task).fit(X, targets)
    twin_losses = Trainer(twin.module_, twin_loss, optimizer, epochs, seed=seed, task=task).fit(X, twin_targets)
    log.info("compress: distilled student (T=%s, alpha=%s) and its hard-label twin trained %d epochs", temperature,
             alpha, epochs)
    return student, twin, {"epochs": epochs, "teacher_train_accuracy": agreement,
                           "final_loss": losses[-1], "hard_label_final_loss": twin_losses[-1]}
