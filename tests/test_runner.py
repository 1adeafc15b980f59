"""The plugin's model runner: one load serves a model's checks, whatever order xdist hands them out in."""

from pytest_nnterp.runner import Loaded, ModelRunner
from pytest_nnterp.targets import Target


def _target(name: str) -> Target:
    return Target(f"toy:{name}", "toy", f"{name}ForCausalLM", f"{name}-toy")


def test_models_are_kept_least_recently_used_out(monkeypatch):
    loads: list[str] = []

    def load(target: Target) -> Loaded:
        loads.append(target.model_id)
        return Loaded(model=target.model_id)

    monkeypatch.setattr(ModelRunner, "_load", staticmethod(load))
    runner = ModelRunner()
    a, b, c = _target("a"), _target("b"), _target("c")
    for target in (a, b, a, c, a, b):  # interleaved, as items of two models may reach one worker
        assert runner.load(target).model == target.model_id
    assert loads == ["toy:a", "toy:b", "toy:c", "toy:b"]  # a stayed: it was used last when c came
