"""Torch threads under pytest-xdist: each worker takes its share of the cores (pytest_nnterp.workers)."""

from types import SimpleNamespace

import torch

from pytest_nnterp.workers import share_cores_between_workers


def test_a_worker_takes_its_share_of_the_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "unset below")  # so that monkeypatch restores the variable's state
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    before = torch.get_num_threads()
    try:
        assert share_cores_between_workers(SimpleNamespace(workerinput={"workercount": 4})) == 2
        assert torch.get_num_threads() == 2
        import os

        assert os.environ["OMP_NUM_THREADS"] == "2"
    finally:
        torch.set_num_threads(before)


def test_more_workers_than_cores_still_get_one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "unset below")  # so that monkeypatch restores the variable's state
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    before = torch.get_num_threads()
    try:
        assert share_cores_between_workers(SimpleNamespace(workerinput={"workercount": 3})) == 1
    finally:
        torch.set_num_threads(before)


def test_the_controller_and_a_users_own_choice_are_left_alone(monkeypatch):
    before = torch.get_num_threads()
    assert share_cores_between_workers(SimpleNamespace()) is None  # not an xdist worker
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert share_cores_between_workers(SimpleNamespace(workerinput={"workercount": 2})) is None
    assert torch.get_num_threads() == before
