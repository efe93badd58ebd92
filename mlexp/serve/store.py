"""Models loaded on first use and unloaded least-recently-used beyond a cap; traffic split across weighted variants."""

import asyncio
import logging
import random
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mlexp.errors import MlexpError
from mlexp.serve.codec import BadRequest
from mlexp.serve.spec import MODEL_FILE, Variant, file_sha256

__all__ = ["LoadedModel", "ModelStore", "Router"]

log = logging.getLogger("mlexp")


@dataclass
class LoadedModel:
    name: str
    model: Any
    card: Dict[str, Any]


class ModelStore:
    """The endpoint's models by name: loaded in a worker thread on first use, at most ``max_loaded`` kept.

    Used from the event loop only (one thread), so the LRU order needs no lock; a per-name asyncio
    lock makes concurrent first requests for one model share a single load.
    """

    def __init__(self, sources: Dict[str, str], sha256: Dict[str, str], max_loaded: int,
                 on_change: Optional[Callable[[str, str], None]] = None):
        self.sources, self.sha256, self.max_loaded = sources, sha256, max_loaded
        self._loaded: "OrderedDict[str, LoadedModel]" = OrderedDict()
        self._locks: Dict[str, asyncio.Lock] = {}
        self._on_change = on_change or (lambda event, name: None)

    @property
    def loaded(self) -> List[str]:
        """Names in memory, least recently used first."""
        return list(self._loaded)

    async def get(self, name: str) -> LoadedModel:
        if name not in self.sources:
            raise BadRequest(404, f"no model named {name!r}; this endpoint serves: {', '.join(self.sources)}")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._loaded:
                import anyio

                loaded = await anyio.to_thread.run_sync(self._load, name)
                self._loaded[name] = loaded
                self._on_change("load", name)
                while len(self._loaded) > self.max_loaded:
                    evicted, _ = self._loaded.popitem(last=False)
                    self._on_change("unload", evicted)
                    log.info("unloaded model %s (serve.max_loaded=%d)", evicted, self.max_loaded)
        self._loaded.move_to_end(name)
        return self._loaded[name]

    def _load(self, name: str) -> LoadedModel:
        from mlexp.artifacts import load_model

        run_dir = Path(self.sources[name])
        expected = self.sha256.get(name)
        if expected and file_sha256(run_dir / MODEL_FILE) != expected:
            raise BadRequest(503, f"model {name!r} changed on disk since the endpoint started "
                                  "(its file no longer matches the checked one): restart the endpoint to serve it")
        try:
            model, card = load_model(run_dir)
        except MlexpError as err:
            raise BadRequest(503, f"model {name!r} cannot be loaded: {err}") from err
        log.info("loaded model %s from %s", name, run_dir)
        return LoadedModel(name, model, card)


class Router:
    """Picks the variant for a request: the one asked for, else a weighted draw (seeded per worker)."""

    def __init__(self, variants: List[Variant], seed: Optional[int] = None):
        self.variants = {v.name: v for v in variants}
        self._names = [v.name for v in variants]
        self._weights = [v.weight for v in variants]
        self._random = random.Random(seed)

    def pick(self, asked: Optional[str]) -> Optional[Variant]:
        if not self.variants:
            if asked:
                raise BadRequest(400, f"variant {asked!r} asked for, but this endpoint has no serve.variants")
            return None
        if asked:
            if asked not in self.variants:
                raise BadRequest(404, f"no variant named {asked!r}; variants: {', '.join(self._names)}")
            return self.variants[asked]
        return self.variants[self._random.choices(self._names, weights=self._weights)[0]]
