"""pytest_nnterp: the nnterp compatibility suite as a pytest plugin, registered under ``pytest11`` as ``nnterp``.

``pytest --nnterp-classes all`` (toy models) or ``--nnterp-models ID ...`` (real models) runs every check on
each model and writes a compatibility report (``python -m nnterp run_tests`` does the same). One module per
part: ``plugin`` (the hooks), ``options``, ``targets`` (what is checked), ``suite`` (the test items),
``runner`` (loading models, running checks) and ``session`` (gathering results, writing the report).
"""
