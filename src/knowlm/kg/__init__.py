"""The knowledge-graph store: load extraction outputs, query with SPARQL, export."""

from knowlm.kg.store import GraphStore, LoadReport, normalise

__all__ = ["GraphStore", "LoadReport", "normalise"]
