"""Toy architectures that build but fail a load-time check, each with the precise reason.

Tests mark these xfail(strict=True): the day one starts passing, the suite says so and the
row must go. Keyed by model type.
"""

KNOWN_FAILURES: dict[str, str] = {}
