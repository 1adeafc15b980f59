"""Remote execution as NDIF runs it: nothing of nnterp on the server, only allowed modules in the request.

``remote="local"`` here runs the strict server simulation (``pytest_nnterp.server_simulation``, installed by
tests/conftest.py): the request is deserialized with nnterp unimportable, every module it references checked
against the server's allow-list, and the deserialized request (not the client's model) is what runs. These tests
run it for the editable install and for a wheel built in the session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from nnsight import save

from nnterp.core import accessors
from nnterp.core.accessors import LayerwiseIO, TorchOps, stream_ops
from nnterp.core.registry import StreamLayout
from nnterp.core.remote import (
    CLIENT_ONLY_MEMBERS,
    FACTS,
    RESOLVERS,
    SERVER_MODULES,
    RemoteRequestError,
    RemoteStandardized,
    allowed_on_server,
)
from nnterp.models.standardized import ACCESSOR_NAMES, StandardizedTransformer
from nnterp.toolkit import interventions as toolkit
from nnterp.toolkit.activations import (
    collect_token_activations_batched,
    compute_next_token_probs,
    get_token_activations,
)
from nnterp.toolkit.prompts import Prompt, run_prompts
from pytest_nnterp.server_simulation import ServerSimulation

from .conftest import standardized_toy
from .remote_equality import equal, outcome

PROMPTS = ["The cat sat", "A dog ran far away"]
TARGET = toolkit.TargetPrompt("cat cat\ndog dog\n?", -1)
# A plain one, one with a two-module head (ModernBERT decoder's prediction head), one with several
# residual streams (Gemma 3n's AltUp, laid out streams-first); for single traces also one scaling its
# sublayers and its logits (Granite's multipliers).
ARCHITECTURES = ["llama", "modernbert-decoder", "gemma3n_text"]
REPO = Path(__file__).resolve().parent.parent


def every_remote_function(model):
    """Each toolkit function taking ``remote=``, as a function of ``remote``."""
    prompts = [Prompt.from_strings(text, {"cat": [" cat"]}, model.tokenizer) for text in PROMPTS]
    return {
        "logit_lens": lambda remote: toolkit.logit_lens(model, PROMPTS, remote=remote),
        "last_token_latents": lambda remote: toolkit.last_token_latents(model, PROMPTS, remote=remote),
        "patchscope_lens": lambda remote: toolkit.patchscope_lens(model, PROMPTS, TARGET, layers=[0, -1],
                                                                  remote=remote),
        "patchscope_generate": lambda remote: toolkit.patchscope_generate(model, PROMPTS, TARGET, max_length=2,
                                                                          layers=[0], remote=remote),
        "get_token_activations": lambda remote: get_token_activations(model, PROMPTS, idx=0, remote=remote),
        "compute_next_token_probs": lambda remote: compute_next_token_probs(model, PROMPTS, remote=remote),
        "collect_token_activations_batched": lambda remote: collect_token_activations_batched(
            model, PROMPTS, batch_size=1, remote=remote, progress=False),
        "run_prompts": lambda remote: run_prompts(model, prompts, batch_size=1, remote=remote),
    }


@pytest.fixture(scope="module", params=ARCHITECTURES + ["granite"])
def model(request):
    return standardized_toy(request.param)


@pytest.mark.parametrize("model", ARCHITECTURES, indirect=True)
def test_every_remote_function_equals_the_local_run_under_the_server_simulation(model):
    differing = [name for name, run in every_remote_function(model).items()
                 if not equal(outcome(run, False), outcome(run, "local"))]
    assert not differing, f"{type(model._module).__name__}: remote='local' differs from the local run: {differing}"


def trace_through_every_accessor(model, remote) -> list:
    """Every accessor read and written in one trace (steering and layer skipping included)."""
    with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):  # in the order the model runs
        values = save([model.token_embeddings, model.layers_input[0], model.attentions_input[0],
                       model.attentions_output[0], model.mlps_input[0]])
        model.mlps_output[0] = model.mlps_output[0] * 0.5
        model.steer(0, torch.ones(model.hidden_size), factor=0.5)
        model.skip_layer(1)
        last = model.layers_output[-1]
        values.append(model.project_on_vocab(model.collapse_streams(last[:, -1])))
        values.append(model.logits)
    return values


def attention_probabilities_trace(model, remote) -> list:
    """Attention probabilities edited at one layer and read at the next."""
    with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):
        model.attention_probabilities[0] = model.attention_probabilities[0] * 0
        probabilities = model.attention_probabilities[1].save()
        logits = model.logits.save()
    return [probabilities, logits]


def per_head_accessors_trace(model, remote) -> list:
    """Per-head accessors read, and one head edited in place (the edit must reach the model's output)."""
    with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):  # in the order the model runs
        values = save([model.queries[0], model.keys[0], model.values[0], model.heads_output[0]])
        model.heads_output[1][:, :, 0] = 0
        values.append(model.logits)
    return values


def test_a_trace_through_every_accessor_equals_the_local_run(model):
    assert all(torch.equal(local, remote) for local, remote in
               zip(trace_through_every_accessor(model, False), trace_through_every_accessor(model, "local")))


def test_attention_probabilities_are_served_remotely():
    llama = standardized_toy("llama")
    local, remote = (attention_probabilities_trace(llama, mode) for mode in (False, "local"))
    assert torch.equal(local[0], remote[0]) and torch.equal(local[1], remote[1])


def test_per_head_accessors_are_served_remotely(llama):
    assert all(torch.equal(local, remote) for local, remote in
               zip(per_head_accessors_trace(llama, False), per_head_accessors_trace(llama, "local")))


def test_the_request_references_only_server_modules(llama):
    backend = ServerSimulation(llama)
    with torch.no_grad(), llama.trace(PROMPTS[0], backend=backend):
        llama.layers_output[1].save()
    assert backend.referenced and all(allowed_on_server(module) for module in backend.referenced)
    assert not any(module.split(".")[0] in ("nnterp", "pytest_nnterp") for module in backend.referenced)
    assert backend.payload_bytes < 200_000
    # loading it here put nothing of the "server" into the client: its classes keep their own methods
    assert LayerwiseIO.__getitem__.__code__.co_filename == accessors.__file__


def test_a_request_referencing_a_module_the_server_lacks_fails_naming_it(llama):
    import fractions

    with pytest.raises(RemoteRequestError, match=r"fractions \("):
        with torch.no_grad(), llama.trace(PROMPTS[0], remote="local"):
            save([fractions.Fraction(1, 2), llama.layers_output[0]])
    with pytest.raises(RemoteRequestError, match=r"nnterp\.core\.registry \(StreamLayout\)"):
        with torch.no_grad(), llama.trace(PROMPTS[0], remote="local"):
            save([StreamLayout.STREAM_AXIS, llama.layers_output[0]])


def test_every_public_member_of_the_model_is_served_remotely_or_client_only():
    own = {name for klass in StandardizedTransformer.__mro__ if klass.__module__.startswith("nnterp.")
           for name in vars(klass) if not name.startswith("_")}
    served = {name for name in dir(RemoteStandardized) if not name.startswith("_")}
    unplaced = own - served - set(FACTS) - set(CLIENT_ONLY_MEMBERS)
    assert not unplaced, (f"StandardizedTransformer.{sorted(unplaced)} has no remote counterpart: add it to "
                          "nnterp.core.trace_time.TraceTimeMembers (or FACTS), or to CLIENT_ONLY_MEMBERS")
    assert {"project_on_vocab", "skip_layers", "steer", "token_embeddings"} <= served


def test_the_trace_time_members_are_written_once_for_client_and_server():
    from nnterp.core.trace_time import TraceTimeMembers

    for name in vars(TraceTimeMembers):
        if not name.startswith("__"):
            assert name not in vars(StandardizedTransformer) and name not in vars(RemoteStandardized), name
    assert list(RESOLVERS) == list(ACCESSOR_NAMES), "every accessor needs a server form in nnterp.core.remote.RESOLVERS"


def test_the_model_key_names_nnsights_wrapper(llama):
    assert type(llama)._remoteable_class(llama).__module__.startswith("nnsight.")


@pytest.mark.parametrize("layout", list(StreamLayout))
def test_stream_ops_convert_as_the_registry_layouts_do(layout):
    native = torch.randn(layout.shape(2, 5, 3, 4))
    to_canonical, to_native = (TorchOps(ops) for ops in stream_ops(layout.name, 3))
    canonical = to_canonical(native)
    assert torch.equal(canonical, layout.to_canonical(native, 3))
    assert torch.equal(to_native(canonical), layout.to_native(canonical, 3))


# -- the same, installed from a wheel ---------------------------------------------------

WHEEL_CHECK = """
import json, sys, torch
import nnterp
from nnterp.toy.standardized import standardized_toy
from nnterp import logit_lens, get_token_activations
from pytest_nnterp.server_simulation import install
import pytest_nnterp
assert nnterp.__file__.startswith(sys.argv[1]), nnterp.__file__
assert pytest_nnterp.__file__.startswith(sys.argv[1]), pytest_nnterp.__file__
install()
results = {}
for name in ("llama",):
    model = standardized_toy(name)
    prompts = ["The cat sat", "A dog ran far away"]
    results[name] = all(torch.equal(run(False), run("local")) for run in (
        lambda remote: logit_lens(model, prompts, remote=remote),
        lambda remote: get_token_activations(model, prompts, remote=remote)))
print(json.dumps({"nnterp": nnterp.__file__, "equal": results}))
"""


@pytest.fixture(scope="session")
def wheel_install(tmp_path_factory) -> Path:
    """nnterp built as a wheel from this tree (a copy, so the tree gets no build files) and installed into a
    target folder."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("nnterp", "pytest_nnterp", "compat_reports"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels, target = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True,
                   capture_output=True)
    wheel = next(wheels.glob("nnterp-*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    return target


def test_the_server_simulation_passes_for_a_wheel_install(wheel_install, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(wheel_install)}
    script = tmp_path / "check.py"
    script.write_text(WHEEL_CHECK)
    finished = subprocess.run([sys.executable, str(script), str(wheel_install)], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["equal"] == {"llama": True}, result


def test_the_library_holds_no_server_simulation_and_local_falls_back_to_nnsights(llama):
    from nnsight.intervention.backends.local import LocalSimulationBackend

    from nnterp.core import remote
    from pytest_nnterp import server_simulation

    assert not {"ServerSimulation", "server_process", "deserialize_as_server"} & set(vars(remote))
    assert isinstance(llama._remote_backend("local", True, None, False), ServerSimulation)  # installed by conftest
    server_simulation.uninstall()
    try:
        assert type(llama._remote_backend("local", True, None, False)) is LocalSimulationBackend
        with torch.no_grad(), llama.trace(PROMPTS[0], remote="local"):
            served = llama.logits.save()
        with torch.no_grad(), llama.trace(PROMPTS[0]):
            local = llama.logits.save()
        assert torch.equal(served, local)
    finally:
        server_simulation.install()


def test_the_allow_list_names_modules_not_packages_for_the_standard_library():
    assert "typing" not in SERVER_MODULES and "abc" not in SERVER_MODULES and allowed_on_server("torch.nn")


def test_the_server_simulation_freezes_the_parameters_as_ndif_does_and_restores_them(llama):
    """NDIF freezes parameters at load: a request sees them frozen, and the client's model keeps its own flags
    afterwards."""
    def flags(remote):
        with llama.trace(PROMPTS[0], remote=remote):
            seen = save([llama.lm_head.weight.requires_grad, llama.layers_output[0].requires_grad])
        return seen
    assert flags(False) == [True, True]
    assert flags("local") == [False, True]  # frozen, and still a read carries gradients
    assert all(parameter.requires_grad for parameter in llama._module.parameters())
