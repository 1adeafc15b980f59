"""Per-architecture corrections to the generic shrink: one row per model type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToyFix:
    """What one model type needs beyond the generic shrink.

    ``config`` overrides top-level config fields; ``sub_configs`` overrides fields of a
    nested config (e.g. ``{"text_config": {...}}``); ``drop`` removes shrunk fields the
    class must derive itself. ``unsupported`` names why no toy model can run here.
    """

    config: dict[str, Any] = field(default_factory=dict)
    sub_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    unsupported: str | None = None

    def apply(self, fields: dict[str, Any]) -> dict[str, Any]:
        fields = {key: value for key, value in fields.items() if key not in self.drop}
        fields.update(self.config)
        for name, overrides in self.sub_configs.items():
            fields[name] = {**fields.get(name, {}), **overrides}
        return fields


TOY_FIXES: dict[str, ToyFix] = {}
