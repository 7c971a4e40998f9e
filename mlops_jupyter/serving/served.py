"""The models a server answers with, each resolved, loaded and prepared once.

One path for every served model, read top to bottom: ref -> registry version -> loaded model ->
runtime (:func:`load_served`). ``mlops serve`` runs it before the server starts (a model that cannot
be served is one line, not a dead server) and hands the result to the server, which then neither
looks the ref up nor loads or converts the model again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .options import ModelRef, ServeOptions

if TYPE_CHECKING:
    from ..models.registry import ModelVersion, Registry
    from .runtime import Predictor


@dataclass
class Served:
    ref: str  # name@vN: the version that answers
    name: str
    version: int
    source: str  # the ref as given (churn@production): what --reload-alias follows
    predictor: Predictor
    signature: dict | None
    weight: float
    classes: list | None = None
    moving: bool = True  # the source can name another version later (an alias, or the latest)
    record: ModelVersion | None = field(default=None, repr=False)  # the registry's record of the version

    @property
    def classifier(self) -> bool:
        return self.classes is not None or bool(self.signature and self.signature.get("task") == "classification")


def load_served(registry: Registry, ref: ModelRef, options: ServeOptions,
                version: ModelVersion | None = None) -> Served:
    """*ref* ready to answer: looked up (unless *version* is given), loaded, prepared by the runtime."""
    from .runtime import runtimes

    v = version if version is not None else registry.get(ref.lookup)
    model = registry.load_version(v, allow_pickle=options.allow_pickle)
    # min_agreement only when asked for: runtimes registered by others need not know the keyword.
    agreement = {} if options.min_agreement is None else {"min_agreement": options.min_agreement}
    predictor = runtimes.get(options.runtime).prepare(model, v.signature, library=v.library,
                                                      quantize=options.quantize, ref=v.ref, **agreement)
    classes = getattr(model, "classes_", None)
    if classes is None:  # a network: its predict face knows the classes its signature records
        classes = getattr(predictor.model, "classes_", None)
    return Served(v.ref, v.name, v.version, ref.text, predictor, v.signature, ref.weight,
                  [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None,
                  moving=ref.moving, record=v)


def load_models(options: ServeOptions, store: Any = None, versions: list[ModelVersion] | None = None) -> list[Served]:
    """Every ref of *options*, each resolved, loaded and prepared once.

    *versions*: the refs already resolved, in the same order (a ``--workers`` process serves the
    versions its parent resolved and checked, even if an alias moved since)."""
    from ..models.registry import Registry

    if store is None:
        from ..store import open_store

        store = open_store()
    registry = Registry(store)
    if versions is None:
        return [load_served(registry, ref, options) for ref in options.refs]
    return [load_served(registry, ref, options, v) for ref, v in zip(options.refs, versions, strict=True)]


def versions_to_json(served: list[Served]) -> str:
    """The versions *served* answers with, for ``--workers`` processes (:func:`versions_from_json`)."""
    return json.dumps([asdict(s.record) for s in served])


def versions_from_json(text: str) -> list[ModelVersion]:
    from ..models.registry import ModelVersion

    return [ModelVersion(**d) for d in json.loads(text)]
