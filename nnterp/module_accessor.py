"""nnterp 1.x import path of ModuleAccessor; it lives in :mod:`nnterp.core.module_accessor`."""

from .core.module_accessor import ModuleAccessor

__all__ = ["ModuleAccessor"]
