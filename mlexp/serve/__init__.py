"""Deployment: the HTTP endpoint (mode=serve), batch transform (mode=predict) and the inference recommender (mode=recommend)."""

import importlib.util

from mlexp.errors import MlexpError

__all__ = ["require_serve_extra"]


def require_serve_extra(mode: str) -> None:
    """MlexpError naming the extra when the endpoint's libraries are not installed."""
    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client", "httpx") if importlib.util.find_spec(m) is None]
    if missing:
        raise MlexpError(f"mode={mode} needs {', '.join(missing)}: pip install 'mlexp[serve]'.")
