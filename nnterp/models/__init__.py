"""Layer 5: the model classes, ``StandardizedTransformer`` and ``StandardizedVLM``. They build on the core, run
the catalogue's load-time checks (``nnterp.checks``) and look up the compatibility reports (``nnterp.compat``)
when a model loads (see ARCHITECTURE.md)."""
