"""The one shim the test server needs: ndif's sandbox model actor, loading and cleaning up on the CPU.

ndif 0.1.2's actor places the model on its assigned GPU and synchronizes CUDA after loading and after each
request. Here there is no GPU (the Ray head declares one by hand, for the controller's placement), so the model
loads on the CPU; everything else is ndif's own: the parameter freeze at load (as a real NDIF does), the trusted
path in the actor's process, the untrusted one in a sandbox runner. Lives outside the repository's packages, on
the server's PYTHONPATH only: the server never imports nnterp.

One more line: the sandbox runner inherits only an allow-list of the actor's environment, which drops
HF_HUB_OFFLINE; offline, each hub call the runner makes then retries for about 23 s and its start times out. A
real NDIF reaches the hub; this one is offline, so the allow-list gets HF_HUB_OFFLINE.
"""

from unittest import mock

import ray
import torch
from nnsight.modeling.huggingface import HuggingFaceModel

from ndif.services.ray.sandbox import host
from ndif.services.ray.sandbox.model import SandboxModelDeployment

host.RUNNER_ENV = (*host.RUNNER_ENV, "HF_HUB_OFFLINE")


class CpuSandboxModelDeployment(SandboxModelDeployment):
    def load_from_disk(self) -> HuggingFaceModel:
        model = HuggingFaceModel.from_model_key(self.model_key, dispatch=True, dtype=self.dtype_name, **self.kwargs)
        model._module.requires_grad_(False)  # ndif's own freeze (base.BaseModelDeployment.load_from_disk)
        return model

    def cleanup(self) -> None:
        with mock.patch.object(torch.cuda, "synchronize", lambda *args, **kwargs: None):
            super().cleanup()


@ray.remote(num_cpus=1, max_restarts=-1)
class CpuSandboxModelActor(CpuSandboxModelDeployment):
    pass
