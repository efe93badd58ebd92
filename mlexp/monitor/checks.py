"""Data-quality checks: constraints.json from baseline statistics, and the six Model Monitor violation types.

``suggest_constraints`` writes what Model Monitor's baselining job suggests (completeness, is_non_negative,
string domains, ``monitoring_config``). ``data_quality_violations`` compares a ``Profiler`` of new data
with the baseline: data_type_check, completeness_check, baseline_drift_check, missing_column_check,
extra_column_check, categorical_values_check, each with feature_name and a description giving the numbers.

Drift distances (``distance``): ``model_monitor`` is Model Monitor's L-infinity distance between the two
cumulative distributions (``comparison_method`` Simple, or Robust: less the two-sample Kolmogorov-Smirnov
allowance for the sample sizes at 5%), L-infinity between category frequencies for strings;
``jensen_shannon`` (base 2, in [0, 1]) and ``psi`` (population stability index) compare ten baseline
deciles (numeric) or the categories. All are compared with ``comparison_threshold`` (numeric) or
``categorical_comparison_threshold`` (strings) of the constraints, a feature's ``monitoringConfigOverrides`` first.
"""

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mlexp.errors import MlexpError
from mlexp.monitor.stats import DOMAIN_MAX, FRACTIONAL, INTEGRAL, Profiler

__all__ = ["suggest_constraints", "drift_edges", "data_quality_violations", "DISTANCES", "MONITORING_CONFIG"]

DISTANCES = ("model_monitor", "jensen_shannon", "psi")
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}
_KS_ALPHA_FACTOR = 1.358  # c(alpha) of the two-sample KS test at alpha = 0.05


def suggest_constraints(statistics: Dict[str, Any]) -> Dict[str, Any]:
    """constraints.json for a baseline statistics.json."""
    features = []
    for feature in statistics["features"]:
        stats = feature.get("numerical_statistics") or feature.get("string_statistics")
        common = stats["common"]
        total = common["num_present"] + common["num_missing"]
        entry: Dict[str, Any] = {"name": feature["name"], "inferred_type": feature["inferred_type"],
                                 "completeness": common["num_present"] / total if total else 0.0}
        if "numerical_statistics" in feature:
            low = stats.get("min")
            entry["num_constraints"] = {"is_non_negative": bool(low is not None and low >= 0)}
        else:
            values = [b["value"] for b in stats["distribution"]["categorical"]["buckets"]]
            if values and stats["distinct_count"] <= DOMAIN_MAX:
                entry["string_constraints"] = {"domains": sorted(values)}
        entry["monitoringConfigOverrides"] = {}
        features.append(entry)
    return {"version": 0, "features": features, "monitoring_config": MONITORING_CONFIG}


def drift_edges(statistics: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """Per numeric baseline feature, bin edges at its percentiles (from the sketch)."""
    edges = {}
    for feature in statistics["features"]:
        sketch = _sketch(feature)
        if sketch is not None and len(sketch):
            edges[feature["name"]] = np.unique(np.quantile(sketch, np.arange(1, 100) / 100))
    return edges


def data_quality_violations(baseline: Dict[str, Any], constraints: Dict[str, Any], current: Profiler,
                            distance: str = "model_monitor") -> Tuple[List[Dict[str, str]], Dict[str, float]]:
    """The violations of ``current`` against the baseline, and the drift distance of each feature."""
    if distance not in DISTANCES:
        raise MlexpError(f"monitor.distance={distance!r} is not a distance; use one of: {', '.join(DISTANCES)}.")
    config = constraints.get("monitoring_config", MONITORING_CONFIG)
    stats = {f["name"]: f for f in baseline["features"]}
    wanted = {c["name"]: c for c in constraints["features"]}
    violations: List[Dict[str, str]] = []
    distances: Dict[str, float] = {}
    missing = [name for name in wanted if name not in current.columns]
    extra = [name for name in current.columns if name not in wanted]
    n_base, n_now = len(wanted), len(current.columns)
    for name in missing:
        violations.append(_violation(name, "missing_column_check", (
            f"There are missing columns in current dataset. Number of columns in current dataset: {n_now}, "
            f"Number of columns in baseline constraints: {n_base}. Column {name!r} is missing.")))
    for name in extra:
        violations.append(_violation(name, "extra_column_check", (
            f"There are extra columns in current dataset. Number of columns in current dataset: {n_now}, "
            f"Number of columns in baseline constraints: {n_base}. Column {name!r} is not in the baseline.")))
    for name, constraint in wanted.items():
        if name not in current.columns:
            continue
        profile = current.columns[name]
        settings = {**config, **config.get("distribution_constraints", {}), **constraint.get("monitoringConfigOverrides", {})}
        violations += _completeness(name, constraint, profile)
        violations += _data_type(name, constraint, profile, float(settings.get("datatype_check_threshold", 1.0)))
        violations += _domain(name, constraint, profile, float(settings.get("domain_content_threshold", 1.0)))
        if settings.get("perform_comparison", "Enabled") != "Enabled" or not profile.present:
            continue
        value, method, threshold = _distance(stats.get(name), profile, distance, settings)
        if value is None:
            continue
        distances[name] = value
        if value > threshold:
            kind = "Categorical" if profile.as_string else "Numerical"
            violations.append(_violation(name, "baseline_drift_check", (
                f"{kind} distance: {value:.4g} exceeds {kind.lower()} threshold: {threshold:g} ({method}; "
                f"{profile.present} current values vs {_present(stats.get(name))} in the baseline).")))
    return violations, distances


def _completeness(name: str, constraint: Dict[str, Any], profile: Any) -> List[Dict[str, str]]:
    expected = float(constraint.get("completeness", 1.0))
    rows = profile.present + profile.missing
    observed = profile.present / rows if rows else 1.0
    # A window of n rows falls short of a completeness below 1 by sampling alone: allow 3 standard errors.
    allowance = 3 * math.sqrt(expected * (1 - expected) / rows) if rows else 0.0
    if observed >= expected - allowance:
        return []
    return [_violation(name, "completeness_check", (
        f"Data completeness requirement is not met. Expected completeness: {expected:.2%}. Observed: Only "
        f"{observed:.2%} of data is complete ({profile.missing} of {rows} values missing)."))]


def _data_type(name: str, constraint: Dict[str, Any], profile: Any, threshold: float) -> List[Dict[str, str]]:
    expected = constraint.get("inferred_type")
    if expected not in (INTEGRAL, FRACTIONAL) or not profile.present:
        return []
    matching = profile.integral if expected == INTEGRAL else profile.numeric
    share = matching / profile.present
    if share >= threshold:
        return []
    odd = sorted(profile.counts, key=profile.counts.get, reverse=True)[:3]
    examples = f" Values such as {', '.join(map(repr, odd))} are not numbers." if odd else ""
    return [_violation(name, "data_type_check", (
        f"Data type match requirement is not met. Expected data type: {expected}, Expected match: "
        f"{threshold:.1%}. Observed: Only {share:.1%} of data is {expected}.{examples}"))]


def _domain(name: str, constraint: Dict[str, Any], profile: Any, threshold: float) -> List[Dict[str, str]]:
    domain = (constraint.get("string_constraints") or {}).get("domains")
    if not domain or not profile.as_string or not profile.present:
        return []
    known = set(domain)
    unseen = {v: c for v, c in profile.counts.items() if v not in known}
    share = 1 - sum(unseen.values()) / profile.present
    if share >= threshold:
        return []
    top = sorted(unseen.items(), key=lambda kv: -kv[1])[:3]
    listed = ", ".join(f"{v!r} ({c})" for v, c in top)
    return [_violation(name, "categorical_values_check", (
        f"New categorical values found. Expected: at least {threshold:.1%} of values in the baseline domain of "
        f"{len(domain)} values. Observed: {share:.2%} ({len(unseen)} unseen value(s), e.g. {listed})."))]


def _distance(feature: Optional[Dict[str, Any]], profile: Any, distance: str,
              settings: Dict[str, Any]) -> Tuple[Optional[float], str, float]:
    if feature is None:
        return None, "", 0.0
    if profile.as_string or "string_statistics" in feature:
        base = {b["value"]: b["count"] for b in feature.get("string_statistics", {}).get(
            "distribution", {}).get("categorical", {}).get("buckets", [])}
        if not base or not profile.counts:
            return None, "", 0.0
        keys = sorted(set(base) | set(profile.counts))
        p = np.array([base.get(k, 0) for k in keys], dtype=float)
        q = np.array([profile.counts.get(k, 0) for k in keys], dtype=float)
        p, q = p / p.sum(), q / q.sum()
        threshold = float(settings.get("categorical_comparison_threshold", 0.1))
        if distance == "model_monitor":
            method = settings.get("categorical_drift_method", "LInfinity")
            if method != "LInfinity":
                raise MlexpError(f"categorical_drift_method {method!r} in constraints.json is not supported; use LInfinity.")
            return float(np.abs(p - q).max()), "LInfinity", threshold
        return _divergence(p, q, distance), distance, threshold
    sketch = _sketch(feature)
    if sketch is None or not len(sketch) or profile.bins is None or not profile.numeric:
        return None, "", 0.0
    threshold = float(settings.get("comparison_threshold", 0.1))
    edges = profile.edges
    cdf_base = np.searchsorted(np.sort(sketch), edges, side="right") / len(sketch)
    cdf_now = np.cumsum(profile.bins)[:-1] / profile.bins.sum()
    if distance == "model_monitor":
        method = settings.get("comparison_method", "Robust")
        value = float(np.abs(cdf_base - cdf_now).max()) if len(edges) else 0.0
        if method == "Robust":
            n, m = _present(feature), profile.numeric
            value = max(0.0, value - _KS_ALPHA_FACTOR * math.sqrt((n + m) / (n * m)))
        elif method != "Simple":
            raise MlexpError(f"comparison_method {method!r} in constraints.json is not supported; use Simple or Robust.")
        return value, f"{method} L-infinity", threshold
    deciles = np.unique(np.searchsorted(edges, np.quantile(sketch, np.arange(1, 10) / 10)))
    deciles = deciles[deciles < len(edges)]
    p = np.diff(np.concatenate([[0.0], cdf_base[deciles], [1.0]]))
    q = np.diff(np.concatenate([[0.0], cdf_now[deciles], [1.0]]))
    return _divergence(p, q, distance), distance, threshold


def _divergence(p: np.ndarray, q: np.ndarray, distance: str) -> float:
    if distance == "jensen_shannon":
        from scipy.spatial.distance import jensenshannon

        return float(jensenshannon(p, q, base=2))
    p, q = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _sketch(feature: Optional[Dict[str, Any]]) -> Optional[np.ndarray]:
    try:
        data = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    except (KeyError, TypeError):
        return None
    return np.asarray([v for level in data for v in level], dtype=float)


def _present(feature: Optional[Dict[str, Any]]) -> int:
    stats = (feature or {}).get("numerical_statistics") or (feature or {}).get("string_statistics") or {}
    return int(stats.get("common", {}).get("num_present", 0))


def _violation(name: str, check: str, description: str) -> Dict[str, str]:
    return {"feature_name": name, "constraint_check_type": check, "description": description}
