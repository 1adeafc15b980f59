"""The client side's shims, all of them: what a test needs to send requests to the fixture's server.

- the host, set on nnsight's config (``NDIF_HOST`` set before ``import nnsight`` does the same);
- no status display (it redraws a line ten times a second);
- one torch thread, as the server's model actor has: matrix products sum in another order on two threads, and
  local and remote results are compared bit for bit;
- the model key's repo id, which nnsight asks the hub to spell canonically: the models here are on no hub;
- the sandbox mode: with authentication off, ndif runs a request trusted (in the model actor's process) unless
  its envelope says ``trusted: false``, and nnsight's envelope has no such field.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any, Callable

import torch

MODES = ("trusted", "sandbox")


def configure(host: str) -> None:
    from nnsight import CONFIG

    CONFIG.API.HOST = host
    CONFIG.APP.REMOTE_LOGGING = False
    torch.set_num_threads(1)


def register_repo_id(repo_id: str) -> None:
    """nnsight's model key without the hub look-up of the repo id's canonical spelling."""
    from nnsight.modeling import huggingface

    huggingface._ID_CACHE[repo_id] = repo_id


@contextlib.contextmanager
def mode(name: str) -> Iterator[None]:
    """Requests sent inside run in ``name`` mode: trusted (ndif's default without authentication) or sandbox."""
    if name == "trusted":
        yield
        return
    from nnsight.schema.request import RequestModel

    metadata = RequestModel.metadata
    RequestModel.metadata = lambda self: json.dumps({**json.loads(metadata(self)), "trusted": False})
    try:
        yield
    finally:
        RequestModel.metadata = metadata


# ndif's answer when its model deployment could not take a request at that moment (seen under load, after a long
# sandboxed request, while the pool replaced its runner): a user retries, and so does the fixture, a few times.
BUSY = "Error submitting request to model deployment. Please try again later."


def retried(run: Callable[[], Any], attempts: int = 4, wait_s: float = 5.0) -> Any:
    """``run()``, sent again while the server answers BUSY (at most ``attempts`` times); any other error is raised."""
    from nnsight.intervention.backends.remote import RemoteError

    for attempt in range(attempts):
        try:
            return run()
        except RemoteError as error:
            if BUSY not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(wait_s)
    raise AssertionError("unreachable")
