"""A real NDIF server (PyPI ``ndif``) as a test fixture: ``nox -s ndif`` builds it, starts it and runs
tests/test_ndif_real.py against it. Nothing here is part of the nnterp package."""
