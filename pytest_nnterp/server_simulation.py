"""A strict simulation of an NDIF server, for tests and for checking a request before sending it: test
machinery, so it lives outside the library package.

`ServerSimulation` serializes a trace exactly as nnsight's remote backend does, deserializes it as an NDIF server
would (parameters frozen, nnterp and pytest_nnterp unimportable, every referenced module checked against
``nnterp.core.remote.SERVER_MODULES``, a `RemoteRequestError` naming any other), runs the deserialized request
and hands the saved values back through ``torch.save`` as a server does. Pass it as a trace's backend
(``model.trace(prompt, backend=ServerSimulation(model))``), or `install` it so that ``remote="local"`` runs it
everywhere (nnterp's own tests do, in ``tests/conftest.py``). Importing this module loads torch and nnsight; the
pytest plugin never imports it.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any, Callable, Iterator

import torch
from nnsight.tracing.backend import Backend

from nnterp.core.remote import CLIENT_ONLY_PACKAGES, SERVER_MODULES, allowed_on_server, use_local_backend
from nnterp.errors import RemoteRequestError
from nnterp.utils.gradients import frozen_parameters


def install() -> None:
    """Make ``remote="local"`` on every StandardizedTransformer run `ServerSimulation`."""
    use_local_backend(lambda model, verbose: ServerSimulation(model, verbose=verbose))


def uninstall() -> None:
    """Back to nnsight's local simulation for ``remote="local"``."""
    use_local_backend(None)


class _ClientOnlyBlocker:
    """A meta-path finder refusing `CLIENT_ONLY_PACKAGES`, as on a server where they are not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in CLIENT_ONLY_PACKAGES:
            raise ModuleNotFoundError(f"No module named {name!r} (the server has no nnterp)", name=name)
        return None


@contextlib.contextmanager
def server_process() -> Iterator[None]:
    """This process as a fresh server for the duration: nnterp and pytest_nnterp unimportable (and out of
    ``sys.modules``), and what a load registers process-wide put back afterwards.

    A server is another process, so loading a request there cannot touch the client. Here it could:
    cloudpickle maps a by-value class back onto the live class of the same id and overwrites its
    methods, and nnsight registers shipped source in ``linecache`` under the client's file names.
    """
    import linecache
    import weakref

    from cloudpickle import cloudpickle as pickler

    hidden = {name: sys.modules.pop(name) for name in list(sys.modules)
              if name.split(".")[0] in CLIENT_ONLY_PACKAGES}
    blocker = _ClientOnlyBlocker()
    sys.meta_path.insert(0, blocker)
    trackers = pickler._DYNAMIC_CLASS_TRACKER_BY_ID, pickler._DYNAMIC_CLASS_TRACKER_BY_CLASS
    pickler._DYNAMIC_CLASS_TRACKER_BY_ID = weakref.WeakValueDictionary()
    pickler._DYNAMIC_CLASS_TRACKER_BY_CLASS = weakref.WeakKeyDictionary()
    lines = dict(linecache.cache)
    try:
        yield
    finally:
        pickler._DYNAMIC_CLASS_TRACKER_BY_ID, pickler._DYNAMIC_CLASS_TRACKER_BY_CLASS = trackers
        linecache.cache.clear()
        linecache.cache.update(lines)
        sys.meta_path.remove(blocker)
        sys.modules.update(hidden)


def _audited_import(referenced: dict[str, set[str]]) -> Callable[[str], Any]:
    """cloudpickle's ``subimport`` (how a pickle names a module object), recording the module."""
    from cloudpickle.cloudpickle import subimport

    def audited(name: str) -> Any:
        referenced.setdefault(name, set()).add("<module>")
        return subimport(name)
    return audited


def recording_unpickler(referenced: dict[str, set[str]]) -> type:
    """nnsight's unpickler, recording every module (and name in it) the request references."""
    from nnsight.intervention.serialization import CustomCloudUnpickler

    class RecordingUnpickler(CustomCloudUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            referenced.setdefault(module, set()).add(name)
            if module.split(".")[0] == "cloudpickle" and name == "subimport":
                return _audited_import(referenced)
            return super().find_class(module, name)
    return RecordingUnpickler


def refused_modules(referenced: dict[str, set[str]]) -> None:
    """Raise `RemoteRequestError` naming every referenced module the server does not allow."""
    refused = {module: names for module, names in referenced.items() if not allowed_on_server(module)}
    if refused:
        listed = "; ".join(f"{module} ({', '.join(sorted(names))})" for module, names in sorted(refused.items()))
        raise RemoteRequestError(f"the request references modules an NDIF server does not allow: {listed}. "
                                 f"Allowed: {', '.join(SERVER_MODULES)}. Keep objects of other modules out of "
                                 "the traced block (compute them before the trace), or ship code by value that "
                                 "imports only allowed modules")


def deserialize_as_server(blob: bytes, persistent: dict) -> tuple[Any, dict[str, set[str]]]:
    """The request as an NDIF server loads it: nnterp unimportable, every referenced module allowed.

    Returns the deserialized tracer and the modules referenced (with the names taken from each)."""
    from nnsight.schema.request import RequestModel

    referenced: dict[str, set[str]] = {}
    try:
        restored = RequestModel.deserialize(blob, persistent, unpickler=recording_unpickler(referenced))
    except ImportError as error:
        refused_modules(referenced)
        raise RemoteRequestError(f"the request needs a module the server does not have: {error}") from error
    refused_modules(referenced)
    return restored, referenced


class ServerSimulation(Backend):
    """``remote="local"`` for StandardizedTransformer: run a request as an NDIF server would.

    Serializes the trace exactly as the remote backend does, deserializes it with nnterp unimportable
    and every referenced module checked against `SERVER_MODULES` (raising `RemoteRequestError`
    naming any other), runs the deserialized request (the twin, not the client's model), and hands
    the saved values back through ``torch.save``/``torch.load`` as a server does. As on NDIF, the parameters are
    frozen while it runs (a server freezes them at load).
    """

    def __init__(self, model: Any, verbose: bool = False):
        self.model = model
        self.verbose = verbose
        self.payload_bytes = 0
        self.referenced: dict[str, set[str]] = {}

    def __call__(self, tracer: Any) -> None:
        from nnsight.schema.request import RequestModel

        blob = RequestModel.serialize(tracer, compress=False)
        self.payload_bytes = len(blob)
        persistent = self.model._remoteable_persistent_objects()
        # As on an NDIF server: parameters frozen at load. The grad mode stays the client's, so that the toolkit's
        # no_grad traces read here as they do locally (an NDIF server runs every request in grad mode: README).
        with server_process(), frozen_parameters(self.model._module):
            restored, self.referenced = deserialize_as_server(blob, persistent)
            result = self._run(restored)
        if self.verbose:
            print(f"[server simulation] payload {len(blob):,} bytes, modules: {', '.join(sorted(self.referenced))}")
        self._push(result, tracer)

    @staticmethod
    def _run(restored: Any) -> bytes:
        """Execute the deserialized request; the saved values, as the server's ``torch.save`` bytes."""
        from nnsight.tracing.tracer import _saves

        restored.execute(restored.info.code)
        saved = {name: value for name, value in restored.info.frame.f_locals.items() if id(value) in _saves()}
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        return buffer.getvalue()

    @staticmethod
    def _push(result: bytes, tracer: Any) -> None:
        from nnsight.tracing.tracer import save
        from nnsight.tracing.util import push

        values = torch.load(io.BytesIO(result), map_location="cpu", weights_only=False)
        for value in values.values():
            save(value)
        push(tracer.info.frame, values)
