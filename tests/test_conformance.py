"""scikit-learn's own estimator checks (parametrize_with_checks) over every estimator and transformer class mlexp defines."""

import ast
import importlib.util

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import REPO, compose
from mlexp.pipeline.transformers import DatetimeFeatures, LogTransformer

HAS_TORCH = importlib.util.find_spec("skorch") is not None and importlib.util.find_spec("torch") is not None

# Checks that cannot apply to LogTransformer(signed=False), with the reason (its file is DATA's; the
# nets keep theirs beside the class, in mlexp.neural._net.EXPECTED_FAILED_CHECKS).
LOG_EXPECTED_FAILED = {
    "check_positive_only_tag_during_fit": "it refuses negative input as the tag says, with a message naming the "
                                          "columns and the fix (features.log.transformer.signed=true) instead of "
                                          "scikit-learn's fixed wording 'Negative values in data'",
}


def _net(model: str, task: str):
    """A net exactly as `model=<model>` builds it, with fewer epochs and a larger step so the checks stay quick."""
    from mlexp.models.model import build_model

    cfg = compose([f"model={model}", "model.max_epochs=30", "optimizer.lr=0.01"])
    return build_model(cfg.model, task, n_jobs=1, context={"seed": 0, "device": "cpu", "cfg": cfg})


def _estimators() -> list:
    estimators = [LogTransformer(), LogTransformer(signed=True), DatetimeFeatures(), DatetimeFeatures(cyclical=True)]
    if HAS_TORCH:
        estimators += [_net(model, task) for model in ("mlp", "torch_linear")
                       for task in ("classification", "regression")]
    return estimators


def _expected_failed(estimator) -> dict:
    if isinstance(estimator, LogTransformer) and not estimator.signed:
        return LOG_EXPECTED_FAILED
    if type(estimator).__module__.startswith("mlexp.neural"):
        from mlexp.neural._net import EXPECTED_FAILED_CHECKS

        return EXPECTED_FAILED_CHECKS
    return {}


ESTIMATORS = _estimators()


# skorch checks `callbacks` inside set_params (its design): check_set_params passes, but warns for it and,
# the net's callbacks then being the fuzz value, for every later parameter of that check.
@pytest.mark.filterwarnings("ignore:.*set_params.*:UserWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# Names scikit-learn and skorch give their estimator bases: a class deriving from one is an estimator.
_ESTIMATOR_BASES = {"BaseEstimator", "TransformerMixin", "ClassifierMixin", "RegressorMixin", "ClusterMixin",
                    "OneToOneFeatureMixin", "ClassNamePrefixFeaturesOutMixin", "NeuralNet",
                    "NeuralNetClassifier", "NeuralNetRegressor", "NeuralNetBinaryClassifier"}


def _defined_estimator_classes() -> set:
    """Every class in mlexp/ whose bases name an estimator base, or a class found that way (fixed point)."""
    classes = {}
    for path in (REPO / "mlexp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
    found, bases = set(), set(_ESTIMATOR_BASES)
    while True:
        new = {name for name, parents in classes.items() if parents & bases} - found
        if not new:
            return found
        found |= new
        bases |= new


def test_every_estimator_class_is_checked():
    checked = {type(e).__name__ for e in ESTIMATORS}
    defined = _defined_estimator_classes()
    if not HAS_TORCH:
        defined -= {"TorchClassifier", "TorchRegressor"}
    missing = sorted(defined - checked)
    assert not missing, (f"estimator classes without scikit-learn's checks: {missing}; add an instance to "
                         "_estimators() in tests/test_conformance.py (and expected failures with reasons).")
    assert {"LogTransformer", "DatetimeFeatures"} <= defined  # the scan finds what it should
