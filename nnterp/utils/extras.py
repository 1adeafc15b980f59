"""nnterp's optional extras: which packages each one adds, and the check a feature makes before it uses them.

The check asks ``importlib.util.find_spec`` (nothing is imported), so a missing package is a typed
:class:`~nnterp.errors.MissingExtra` at the point of use, not an ImportError from deep inside transformers.
"""

from __future__ import annotations

import importlib.util

from ..errors import MissingExtra

# extra -> {module it provides: distribution that installs it}, as pyproject.toml's optional-dependencies say.
EXTRAS: dict[str, dict[str, str]] = {
    "vlm": {"PIL": "pillow", "num2words": "num2words"},  # image processors; SmolVLM's processor
}


def require_extra(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise MissingExtra naming ``extra`` unless ``modules`` (default: every module of the extra) can be
    imported; ``feature`` is what needs them, as the message says it."""
    provided = EXTRAS[extra]
    missing = [provided[module] if provided[module] == module else f"{provided[module]} (module {module})"
               for module in modules or tuple(provided) if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtra(extra, missing, feature)
