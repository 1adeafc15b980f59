"""The real-server fixture's launcher stops every process it started (tests/ndif_server/launcher.py): a service's
whole session, children that ignore SIGTERM included. Runs without a server."""

import subprocess
import time

from .ndif_server.launcher import _session_members, _stop_session, model_key

SERVICE = "trap '' TERM; sleep 60 & sleep 60 & wait"  # a leader and two children, none of which stops on SIGTERM


def test_a_stopped_service_leaves_no_process_of_its_session():
    process = subprocess.Popen(["bash", "-c", SERVICE], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(_session_members(process.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = _session_members(process.pid)
    assert len(members) == 3 and process.pid in members
    _stop_session(process, grace_s=0.5)
    assert process.returncode is not None and _session_members(process.pid) == []


def test_the_deployed_key_is_the_one_a_standardized_model_sends(llama):
    """What the launcher deploys is what nnsight's client sends for a model loaded by repo id (the toy here
    has none: its key is built the same way, with its repo id filled in)."""
    from nnsight.modeling import huggingface

    llama.repo_id = "nnterp-test/toy-llama"
    huggingface._ID_CACHE[llama.repo_id] = llama.repo_id
    assert llama.to_model_key() == model_key("nnterp-test/toy-llama")
