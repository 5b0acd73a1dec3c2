"""Knowledge graphs of extraction outputs: the store (``knowlm.kg.store``), entity resolution
(``knowlm.kg.resolve``), graph-level evaluation (``knowlm.kg.evaluate``) and exports. ``knowlm.kg.iri`` is the
one IRI scheme of every RDF output; this package imports nothing eagerly, so that importing it stays cheap."""
