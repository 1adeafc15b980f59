"""Every remote feature against a real NDIF server (PyPI ``ndif``, tests/ndif_server), in both of its modes:
trusted (the block runs in the model actor's process) and sandbox (in ndif's sandbox runner). Each result must
equal the local run bit for bit, on the toy Llama and on SmolLM2, both loaded by the server from the same local
Hugging Face cache as here.

Opt-in (marker ``ndif``): ``nox -s ndif`` builds the server's virtualenv and runs these in a network namespace.
Without a server they are skipped; ``NNTERP_NDIF_HOST`` points them at one already running.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from nnterp.errors import SandboxBackwardUnsupported

from .ndif_server import client
from .ndif_server.features import BACKWARD, FEATURES, every_feature
from .ndif_server.models import SMOLLM2_REPO, TOY_REPO
from .remote_equality import equal, outcome

NEEDS_SERVER = "needs a real NDIF server: run `nox -s ndif` (or set NNTERP_NDIF_HOST to a running one)"
MODELS = {"toy": TOY_REPO, "smollm2": SMOLLM2_REPO}


@pytest.fixture(scope="session")
def ndif_host(tmp_path_factory) -> Any:
    if not (os.environ.get("NNTERP_NDIF_HOST") or os.environ.get("NNTERP_NDIF_SERVER_VENV")):
        pytest.skip(NEEDS_SERVER)
    from .ndif_server.launcher import served_host

    served = served_host(tmp_path_factory.mktemp("ndif"))
    host = next(served)
    client.configure(host)
    yield host
    next(served, None)  # stops the server this session started


@pytest.fixture(scope="session")
def served_models(ndif_host) -> dict:
    return {}


def served_model(models: dict, name: str) -> Any:
    """The model the server has deployed, loaded here from the same cache (attention probabilities on)."""
    if name not in models:
        from transformers import AutoTokenizer

        from nnterp import StandardizedTransformer

        repo_id = MODELS[name]
        client.register_repo_id(repo_id)
        models[name] = StandardizedTransformer(repo_id, tokenizer=AutoTokenizer.from_pretrained(repo_id),
                                               enable_attention_probs=True)
    return models[name]


@pytest.mark.ndif
@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("mode", client.MODES)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_remote_feature_equals_the_local_run_on_a_real_server(served_models, name, mode, feature):
    run = every_feature(served_model(served_models, name))[feature]
    local = outcome(run, False)
    assert not isinstance(local, tuple), f"{name}: {feature} is refused locally, nothing to compare: {local}"
    with client.mode(mode):
        if mode == "sandbox" and feature in BACKWARD:
            with pytest.raises(SandboxBackwardUnsupported, match="sandbox.*cannot run a backward pass"):
                client.retried(lambda: run(True))
            return
        served = client.retried(lambda: outcome(run, True))
    assert equal(local, served), f"{name}: {feature} on NDIF ({mode}) differs from the local run"


@pytest.mark.ndif
def test_a_plain_nnsight_backward_fails_in_ndifs_sandbox_too(served_models):
    """The sandbox's backward failure is ndif's, not nnterp's: plain nnsight's request fails the same way."""
    from nnsight.intervention.backends.remote import RemoteError
    from nnsight.modeling.transformers import TransformersModel
    from transformers import AutoTokenizer

    client.register_repo_id(TOY_REPO)
    plain = TransformersModel(TOY_REPO, task="text-generation", tokenizer=AutoTokenizer.from_pretrained(TOY_REPO))
    with client.mode("sandbox"), pytest.raises(RemoteError, match=r"OutOfOrderError: '\S+\.grad\.i0' was requested"):
        client.retried(lambda: _plain_backward(plain))


def _plain_backward(plain) -> None:
    with plain.trace("The cat sat", remote=True):
        plain.model.embed_tokens.output.requires_grad_(True)  # the server froze the parameters
        hidden = plain.model.layers[0].output
        loss = plain.lm_head.output.sum()
        with loss.backward():
            hidden.grad.save()


def test_the_feature_list_is_every_remote_feature(llama):
    assert tuple(every_feature(llama)) == FEATURES

