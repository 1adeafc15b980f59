"""nnterp's benchmarks: ``python benchmarks/run.py`` (see there for the rows and their goals).

- ``timing``: the one timing helper (nnterp against its floor, alternated rounds, medians) and ``Row``
- ``subject``: the model the lens, collection, patching and trace rows share (SmolLM2 or the toy llama)
- ``hooks``: the plain-PyTorch forward hooks the floors are built from
- ``lens``, ``collection``, ``patching``, ``construction``, ``memory``: the rows, by goal
- ``nnterp13``: nnterp 1.3.0's construction times, from a second interpreter
- ``report``: the one table, and the JSON with provenance
"""
