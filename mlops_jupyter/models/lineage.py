"""The model registry's part of lineage: the versions a run registered, and model refs
(``models:/churn/1``, ``churn@production``) as lineage's focus. Registered as a lineage source by
entry point (``mlops_jupyter.lineage``), so the data area never imports the models area."""

from __future__ import annotations

from .registry import Registry


class ModelLineage:
    def claims(self, ref: str) -> bool:
        return ref.startswith("models:/")

    @staticmethod
    def _node(builder, mv) -> str:
        return builder.node("model", mv.id, mv.ref, mv.flavor)

    def around(self, builder, ref: str) -> None:
        mv = Registry(builder.store).get(ref)
        builder.graph.focus = self._node(builder, mv)
        if mv.run_id:
            builder.expand_run(mv.run_id)

    def expand_run(self, builder, run_id: str, run_node: str) -> None:
        for mv in Registry(builder.store).versions_of_run(run_id):
            builder.graph.add_edge(run_node, self._node(builder, mv))


source = ModelLineage()
