"""Server failures nnterp translates (nnterp.core.remote_errors), fed the messages a real ndif 0.1.2 server sent
(tests/test_ndif_real.py checks the same against the server itself)."""

import pytest
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError
from nnsight.schema.response import ResponseModel, Status

from nnterp.core.remote_errors import sandbox_backward_error, translate_server_errors
from nnterp.errors import RemoteRequestError, SandboxBackwardUnsupported

# What ndif 0.1.2 answered to a plain nnsight `with loss.backward():` block sent with `trusted: false`.
SANDBOX_BACKWARD = """Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/nnsight/intervention/interleaver.py", line 450, in switch
    return self.worker.switch(*args)
  File "/srv/venv/lib/python3.11/site-packages/nnsight/intervention/interleaver.py", line 245, in _run
    exec(self.code, self.lcls.copy() if self.copy else self.lcls)
  File "/tmp/ndif_probe.py", line 21, in <module>
    with loss.backward():
  File "/srv/venv/lib/python3.11/site-packages/nnsight/tracing/tracer.py", line 604, in __exit__
    raise exception.with_traceback(
  File "/tmp/ndif_probe.py", line 22, in <module>
    g = h.grad.save()
  File "/srv/venv/lib/python3.11/site-packages/ndif/services/ray/sandbox/nns.py", line 85, in ipc_event
    return worker.parent.switch(
nnsight.intervention.interleaver.OutOfOrderError: '140563931366096.grad.i0' was requested but the model already \
ran past it
"""
# The same words from a trusted request (no sandbox frame): the block read gradients out of order, its own bug.
TRUSTED_OUT_OF_ORDER = """Traceback (most recent call last):
  File "/tmp/block.py", line 9, in <module>
    g = h.grad.save()
nnsight.intervention.interleaver.OutOfOrderError: '140563931366096.grad.i0' was requested but the model already \
ran past it
"""
# What ndif 0.1.2 answered, trusted, to the same block with the model's parameters frozen and nothing made to
# require grad.
FROZEN = """Traceback (most recent call last):
  File "/tmp/ndif_probe.py", line 20, in <module>
    with loss.backward():
NotImplementedError: This tensor does not require grad, so a backward session cannot produce gradients
"""


def test_the_sandbox_backward_failure_becomes_a_typed_error_naming_the_limit_and_the_way_around_it():
    error = sandbox_backward_error(SANDBOX_BACKWARD)
    assert isinstance(error, SandboxBackwardUnsupported) and isinstance(error, RemoteRequestError)
    message = str(error)
    assert "sandbox" in message and "backward" in message and "remote=False" in message and "trusted" in message
    assert "'140563931366096.grad.i0' was requested but the model already ran past it" in message


@pytest.mark.parametrize("message", [TRUSTED_OUT_OF_ORDER, "Your job exceeded the execution timeout"])
def test_other_server_failures_are_left_as_they_are(message):
    assert sandbox_backward_error(message) is None


def test_a_backward_without_gradient_on_the_server_names_the_sandbox_limit_and_the_trusted_cause():
    """What ndif sends back when a backward's forward carried no gradient: in its sandbox (which serves the block
    copies) every backward ends there; on a trusted request only a block that read nothing through nnterp does."""
    error = sandbox_backward_error(FROZEN)
    assert isinstance(error, SandboxBackwardUnsupported)
    message = str(error)
    assert "sandbox" in message and "remote=False" in message and "track_activation_gradients" in message
    assert "does not require grad" in message


def _translating_backend() -> RemoteBackend:
    backend = RemoteBackend("nnsight.modeling.transformers.TransformersModel:{}", host="http://127.0.0.1:1")
    backend.display.enabled = False
    return translate_server_errors(backend)


def _error_response(message: str) -> ResponseModel:
    return ResponseModel(id="job", status=Status.ERROR, description=message)


def test_the_backend_raises_the_typed_error_from_the_servers_answer():
    backend = _translating_backend()
    with pytest.raises(SandboxBackwardUnsupported) as raised:
        backend.note(_error_response(SANDBOX_BACKWARD))
    assert isinstance(raised.value.__cause__, RemoteError)  # the server's own message stays on the chain


def test_the_backend_passes_other_failures_and_answers_unchanged():
    backend = _translating_backend()
    with pytest.raises(RemoteError, match="execution timeout"):
        backend.note(_error_response("Your job exceeded the execution timeout"))
    assert backend.note(ResponseModel(id="job", status=Status.COMPLETED)) is True


def test_a_standardized_models_requests_translate_server_errors(llama, monkeypatch):
    monkeypatch.setattr(type(llama), "to_model_key", lambda self: "nnsight.modeling.transformers.TransformersModel:{}")
    backend = llama._remote_backend(True, True, None, False)
    backend.display.enabled = False
    with pytest.raises(SandboxBackwardUnsupported):
        backend.note(_error_response(SANDBOX_BACKWARD))


def test_nnterps_own_refusal_in_the_sandbox_runner_comes_back_typed():
    """A gradient feature in the runner raises SandboxBackwardUnsupported there (node_gradients); its traceback text
    comes back in a RemoteError, and the client raises the typed error again."""
    server = ("Traceback (most recent call last):\n  File \"<nnterp>\", line 1, in node_gradients\n"
              "nnterp.errors.SandboxBackwardUnsupported: this request runs in NDIF's sandbox, which serves the traced "
              "block copies of the model's values\n")
    error = sandbox_backward_error(server)
    assert isinstance(error, SandboxBackwardUnsupported) and "remote=False" in str(error)
    assert sandbox_backward_error(server.replace("SandboxBackwardUnsupported", "ValueError")) is None


def test_a_local_trace_is_not_served_copies_and_a_gradient_feature_refuses_one_that_is(monkeypatch):
    """Locally the interleaver instruments the model's own modules: reads are the model's tensors. Where it is served
    copies (ndif's sandbox runner), the one-call attribution refuses with the typed error before any autograd."""
    from nnsight import save

    from nnterp import attribution_patching_nodes
    from nnterp.core.accessors import served_as_copies
    from nnterp.toolkit.analysis import patching
    from nnterp.toy.standardized import standardized_toy

    model = standardized_toy("llama")
    with model.trace("The quick brown fox"):
        copies = save(served_as_copies())
    assert copies is False and served_as_copies() is False  # in a trace, and outside one
    monkeypatch.setattr(patching, "served_as_copies", lambda: True)
    for attribution in (attribution_patching_nodes, patching.attribution_patching):
        with pytest.raises(SandboxBackwardUnsupported, match="serves the traced block copies"):
            attribution(model, "The quick brown fox", "The quick brown cat",
                        lambda logits: logits[:, -1, 5] - logits[:, -1, 7])
