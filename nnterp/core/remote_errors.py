"""Server errors of a remote (NDIF) request, as nnterp errors where nnterp knows the cause and the way around it.

nnsight's remote backend raises every server failure as ``RemoteError(<the server's traceback as text>)`` from
one place, ``RemoteBackend.note`` (blocking requests, polls and async ones alike). `translate_server_errors`
wraps that method on the backend nnterp builds for a request; a failure it does not recognise passes unchanged.
Client-side only: nothing here is shipped with a request.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import SandboxBackwardUnsupported

# ndif 0.1.2's sandbox runner cannot serve a gradient: the runner asks for it after the host's backward pass is
# over, whatever the order the block reads it in. Seen in the runner's frames (ndif's sandbox module), which a
# trusted request's traceback lacks: there the same words mean the block read gradients out of order.
_SANDBOX_GRAD = re.compile(r"OutOfOrderError: '[^']*\.grad\.i\d+' was requested but the model already ran past it")
_SANDBOX_FRAME = "/sandbox/"
# nnsight's refusal of a backward whose forward carried no gradient, as a server sends it back. nnterp's reads carry
# gradients on a trusted request even with NDIF's frozen parameters (nnterp.core.accessors.differentiable), but not
# in ndif's sandbox, which serves the block copies: there a user's `with loss.backward():` ends here.
_NO_GRADIENT = re.compile(r"NotImplementedError: This tensor does not require grad, so a backward session cannot "
                          r"produce gradients[^\n]*")
# nnterp's own refusal in the runner, where a gradient feature finds the block served copies (node_gradients).
_SANDBOX_REFUSAL = re.compile(r"SandboxBackwardUnsupported: [^\n]*")


def sandbox_backward_error(server_message: str) -> SandboxBackwardUnsupported | None:
    """The nnterp error for a server message that is ndif's sandbox failing a backward pass, else None."""
    found = _SANDBOX_REFUSAL.search(server_message)  # raised only where the block is served copies
    if found is None and (no_gradient := _NO_GRADIENT.search(server_message)):
        return SandboxBackwardUnsupported(
            "the NDIF server's forward carried no gradient to this backward pass. In ndif's sandbox that is its limit: "
            "the sandbox (0.1.2) cannot run a backward pass, plain nnsight's included, so run it here (remote=False) "
            "or as a trusted request. On a trusted request it means nothing read before the backward carries "
            "gradients (the server freezes the parameters): read the values through nnterp's accessors, or call "
            f"model.track_activation_gradients() first in the trace. The server said: {no_gradient.group(0)}")
    if found is None:
        found = _SANDBOX_GRAD.search(server_message)
        if found is None or _SANDBOX_FRAME not in server_message:
            return None
    return SandboxBackwardUnsupported(
        "the NDIF server ran this request in its sandbox, which cannot run a backward pass: ndif's sandbox "
        "(0.1.2) fails every `with loss.backward():` block, plain nnsight's included, so attribution_patching, "
        "the other attribution functions and an accessor's .grad cannot run there. Run it here (remote=False), "
        "or send it as a trusted request (on a server with authentication, an API key with the 'trusted' tag; "
        "without authentication, every request "
        f"that does not ask for the sandbox). The server said: {found.group(0)}")


def translate_server_errors(backend: Any) -> Any:
    """``backend`` (nnsight's RemoteBackend) raising nnterp errors for the server failures nnterp recognises."""
    note = backend.note

    def translating_note(response: Any) -> bool:
        try:
            return note(response)
        except Exception as error:
            translated = sandbox_backward_error(str(error))
            if translated is None:
                raise
            raise translated from error

    backend.note = translating_note
    return backend
