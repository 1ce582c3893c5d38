"""`make worker` picks queues that fit the machine and a node name of its own."""

import subprocess
import sys
import types

import pytest

from tests.conftest import ROOT
from webapp.processes import default_queues, worker_command_from_env


def fake_torch(monkeypatch, cuda: bool):
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: cuda))
    monkeypatch.setitem(sys.modules, "torch", torch)


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.mark.parametrize("cuda, queues", [(True, "gpu,cpu"), (False, "cpu")])
def test_it_takes_gpu_runs_only_where_cuda_is_usable(monkeypatch, cuda, queues):
    fake_torch(monkeypatch, cuda)
    assert default_queues() == queues
    assert option(worker_command_from_env({}, pid=1), "-Q") == queues


def test_queues_from_the_environment_win(monkeypatch):
    fake_torch(monkeypatch, False)
    assert option(worker_command_from_env({"QUEUES": "gpu"}, pid=1), "-Q") == "gpu"


def test_two_workers_on_one_host_get_different_node_names():
    first, second = (option(worker_command_from_env({"QUEUES": "cpu"}, pid=pid), "-n") for pid in (101, 102))
    assert first == "worker-101@%h" and second == "worker-102@%h"
    assert option(worker_command_from_env({"QUEUES": "cpu", "WORKER_NAME": "gpu-1"}), "-n") == "gpu-1@%h"
    command = worker_command_from_env({"QUEUES": "cpu"}, pid=7)
    assert option(command, "--pool") == "solo"  # SIGTERM still reaches the running task


def test_make_worker_runs_it(tmp_path):
    stamp = tmp_path / "installed"
    stamp.write_text("")  # newer than requirements.txt: make installs nothing
    done = subprocess.run(["make", "-n", "worker", f"STAMP={stamp}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "python -m webapp.processes worker" in done.stdout


def test_the_module_refuses_an_unknown_command():
    done = subprocess.run([sys.executable, "-m", "webapp.processes", "web"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "usage: python -m webapp.processes worker" in done.stderr
