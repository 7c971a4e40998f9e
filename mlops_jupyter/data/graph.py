"""Lineage: data -> run -> data around a dataset version or a run, and whatever other areas add.

The data area knows dataset versions and runs. Other areas add their nodes through
:data:`lineage_sources`, found by entry point (group ``mlops_jupyter.lineage``) so that this
module never imports them: the model registry adds the model versions a run registered, and
resolves model refs (``models:/churn/1``, ``churn@production``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .. import rendering
from ..exceptions import BadInput, MlopsError, NotFound
from ..registry import Registry
from .catalog import Catalog, DatasetVersion, parse_ref


@dataclass
class Lineage:
    """A small graph: nodes (id -> (kind, label, status)) and edges (from, to)."""

    focus: str
    nodes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add_edge(self, a: str, b: str) -> None:
        if (a, b) not in self.edges:
            self.edges.append((a, b))

    def __str__(self) -> str:
        if not self.edges:
            return f"{self.nodes.get(self.focus, ('', self.focus, ''))[1]}: no recorded lineage"
        return "\n".join(f"{self.nodes[a][1]} -> {self.nodes[b][1]}" for a, b in self.edges)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)


class LineageBuilder:
    """Grows one :class:`Lineage`; sources call :meth:`node`, :meth:`expand_run` and set ``graph.focus``."""

    def __init__(self, store, catalog: Catalog, graph: Lineage, sources: list["LineageSource"]):
        self.store, self.catalog, self.graph, self.sources = store, catalog, graph, sources

    def node(self, kind: str, key, label: str, status: str) -> str:
        nid = f"{kind}:{key}"
        self.graph.nodes[nid] = (kind, label, status)
        return nid

    def data_node(self, v: DatasetVersion) -> str:
        return self.node("data", v.id, v.ref, v.kind)

    def expand_run(self, run_id: str, name: str | None = None, status: str | None = None) -> str:
        """The run's node, its data in and out, and what each source adds to it."""
        if name is None or status is None:
            row = self.store.meta.run_row(run_id)
            name, status = row["name"], row["status"]
        rn = self.node("run", run_id, f"{name} ({run_id[:8]})", status)
        for direction, dv in self.catalog.versions_of_run(run_id):
            dn = self.data_node(dv)
            self.graph.add_edge(dn, rn) if direction == "input" else self.graph.add_edge(rn, dn)
        for source in self.sources:
            source.expand_run(self, run_id, rn)
        return rn


class LineageSource(Protocol):
    """What another area adds to lineage (registered in :data:`lineage_sources`)."""

    def claims(self, ref: str) -> bool:
        """True when *ref* can only be this source's (``models:/...``)."""

    def around(self, builder: LineageBuilder, ref: str) -> None:
        """Set the focus on what *ref* names and grow the graph around it; MlopsError when unknown."""

    def expand_run(self, builder: LineageBuilder, run_id: str, run_node: str) -> None:
        """Add this source's nodes made by the run."""


lineage_sources: Registry[LineageSource] = Registry("lineage source", entry_point_group="mlops_jupyter.lineage")


def lineage(ref: str) -> Lineage:
    """Data -> run -> data (and, with the registry, -> model version) around a version or a run."""
    from .api import context

    store, catalog, _ = context(cache=False)
    g = Lineage(ref)
    sources = [lineage_sources.get(name) for name in lineage_sources.names()]
    builder = LineageBuilder(store, catalog, g, sources)
    for source in sources:
        if source.claims(ref):
            source.around(builder, ref)
            return g
    if "@" in ref or _is_dataset(catalog, ref):
        try:
            v = catalog.get(ref, with_files=False)
        except (NotFound, BadInput) as data_error:
            for source in sources:  # churn@production: a model version rather than a dataset version
                try:
                    source.around(builder, ref)
                    return g
                except MlopsError:
                    continue
            raise data_error from None
        g.focus = builder.data_node(v)
        for r in catalog.runs_of(v.id):
            builder.expand_run(r["run_id"], r["name"], r["status"])
        return g
    try:
        run_id = store.meta.resolve(ref)
    except MlopsError:
        raise NotFound(f"{ref!r} is neither a dataset version (name@vN), a model version nor a run") from None
    g.focus = builder.expand_run(run_id)
    return g


def _is_dataset(catalog: Catalog, ref: str) -> bool:
    try:
        parse_ref(ref)
    except BadInput:
        return False
    return catalog.latest(ref) is not None
