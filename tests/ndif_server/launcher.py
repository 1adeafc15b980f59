"""Start a real NDIF server (PyPI ``ndif``, pinned in requirements.txt) on 127.0.0.1, and stop it.

Each service is started directly as a process of its own session, from the server's virtualenv (which has no
nnterp): redis, moto's S3 server (ndif's object store), a Ray head with its dashboard (the controller lists
nodes through it) and one GPU declared by hand, ndif's controller, ndif's API under gunicorn, and the
deployment of the models in ``models.py``. Every process started is stopped by its process id, with every
process left in its session, on success and on failure alike.

Ray binds all interfaces and dials the host's own address: run this inside a network namespace with only
``lo`` (``nox -s ndif`` does, with ``unshare -n``).

    HF_HOME=... python -m tests.ndif_server.launcher SERVER_VENV HOME   # start, print the URL, stop on Ctrl-C
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .models import REPOS

SERVER_SIDE = Path(__file__).resolve().parent / "server_side"  # the CPU actor shim: the server's PYTHONPATH
REDIS_PORT, S3_PORT, API_PORT = 6379, 9000, 8001
RAY_PORT, RAY_CLIENT_PORT, RAY_DASHBOARD_PORT = 6385, 10001, 8265
GPU_MEMORY_BYTES = 64 * 2**30  # the one GPU the Ray head declares: what the controller places models by
START_TIMEOUT_S = 300


def model_key(repo_id: str) -> str:
    """The key nnsight's client sends for a StandardizedTransformer loaded by ``repo_id``."""
    suffix = json.dumps({"repo_id": repo_id, "revision": None, "task": "text-generation"})
    return f"nnsight.modeling.transformers.TransformersModel:{suffix}"


def _session_members(session: int) -> list[int]:
    """Process ids of every live process in ``session`` (a service may leave its process group, not its
    session); zombies, dead and waiting to be reaped, are not counted."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@dataclass
class NdifServer:
    """The server's processes, started from ``venv`` with its state (logs, Ray's temp dir) under ``home`` and
    the models read from ``hf_home``."""

    venv: Path
    home: Path
    hf_home: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    def environment(self) -> dict[str, str]:
        bin_dir = str(self.venv / "bin")
        keep = {name: os.environ[name] for name in ("HOME", "LANG", "LC_ALL", "TZ") if name in os.environ}
        return {
            **keep,
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "VIRTUAL_ENV": str(self.venv),
            "PYTHONPATH": str(SERVER_SIDE),
            "HF_HOME": str(self.hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",  # the client compares on one thread too (client.configure)
            "NDIF_HOME": str(self.home),
            "NDIF_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}",
            "NDIF_OBJECT_STORE_URL": f"http://127.0.0.1:{S3_PORT}",
            "NDIF_OBJECT_STORE_ACCESS_KEY": "test", "NDIF_OBJECT_STORE_SECRET_KEY": "test",
            "NDIF_RAY_ADDRESS": f"ray://127.0.0.1:{RAY_CLIENT_PORT}",
            "NDIF_API_URL": self.url, "NDIF_API_PORT": str(API_PORT),
            "NDIF_MODEL_IMPORT_PATH": "ndif_cpu_actor.CpuSandboxModelActor",
            "NDIF_DEFAULT_DTYPE": "float32",  # the client's dtype: results compare bit for bit
            "NDIF_SANDBOX_POOL_SIZE": "1",
            "NDIF_INFLUX_ENABLED": "false",
            "RAY_USAGE_STATS_ENABLED": "0", "GRPC_ENABLE_FORK_SUPPORT": "0",
        }

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "ab")
        process = subprocess.Popen(command, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home)
        log.close()
        self.processes[name] = process
        return process

    def _run(self, name: str, command: list[str], timeout: float = START_TIMEOUT_S) -> None:
        process = self._spawn(name, command)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish in {timeout} s: see {self.home / name}.log") from None
        if process.returncode != 0:
            raise RuntimeError(f"{name} failed ({process.returncode}):\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _wait_for(self, name: str, ready, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{name} not ready in {timeout} s:\n{self.log_tail(name)}")

    def _http_ok(self, url: str) -> bool:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200

    def start(self) -> str:
        """Start every service and deploy the models; the API's URL. Stops what it started if any step fails."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self._start_services()
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - started
        return self.url

    def _start_services(self) -> None:
        bin_dir = self.venv / "bin"
        self._spawn("redis", ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--daemonize", "no"])
        self._spawn("s3", [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(S3_PORT)])
        resources = {"head": 10, "cuda_memory_bytes": GPU_MEMORY_BYTES,
                     "cpu_memory_bytes": 16 * 2**30}  # what ndif's resources.py would measure with a GPU
        self._spawn("ray", [str(bin_dir / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                            f"--port={RAY_PORT}", f"--ray-client-server-port={RAY_CLIENT_PORT}",
                            "--num-gpus=1", "--num-cpus=8", f"--resources={json.dumps(resources)}",
                            "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                            f"--dashboard-port={RAY_DASHBOARD_PORT}", "--disable-usage-stats",
                            f"--temp-dir={self.ray_temp_dir}"])
        self._wait_for("s3", lambda: self._http_ok(f"http://127.0.0.1:{S3_PORT}/moto-api/"))
        self._wait_for("ray", lambda: self._http_ok(f"http://127.0.0.1:{RAY_DASHBOARD_PORT}/api/version"))
        self._run("controller", [str(bin_dir / "python"), "-m", "ndif.services.ray.deployments.controller.controller"])
        self._spawn("api", [str(bin_dir / "gunicorn"), "--config", "python:ndif.services.api.gunicorn_conf",
                            "ndif.services.api.app:app"])
        self._wait_for("api", lambda: self._http_ok(f"{self.url}/ping"))
        config = self.home / "models.yaml"
        config.write_text(json.dumps({"models": [
            {"checkpoint": repo, "model_key": model_key(repo), "pinned": True, "dtype": "float32",
             "size_bytes": 2**30} for repo in REPOS]}))
        self._run("deploy", [str(bin_dir / "ndif"), "deploy", "-f", str(config)])

    @property
    def ray_temp_dir(self) -> str:
        # Ray's Unix sockets live under it: keep it short (socket paths are limited to 107 bytes)
        return f"/tmp/ndif-ray-{os.getpid()}"

    def stop(self) -> None:
        """Stop every process started, newest first, each with its whole session (SIGTERM, SIGKILL after 5 s)."""
        started = time.monotonic()
        for name, process in reversed(list(self.processes.items())):
            stopping = time.monotonic()
            _stop_session(process)
            self.timings[f"stop_{name}_s"] = round(time.monotonic() - stopping, 2)
        self.processes.clear()
        self.timings["stop_s"] = time.monotonic() - started


def _stop_session(process: subprocess.Popen, grace_s: float = 5) -> None:
    """Stop ``process`` and every process of its session (start_new_session: its id is the session's)."""
    for pid in _session_members(process.pid):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _session_members(process.pid) and time.monotonic() < deadline:
        process.poll()  # reaps the leader, whose zombie would otherwise stay a member
        time.sleep(0.2)
    for pid in _session_members(process.pid):
        _signal(pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _session_members(process.pid) and time.monotonic() < deadline:  # SIGKILL lands asynchronously
        time.sleep(0.05)


def served_host(home: Path) -> Iterator[str]:
    """The host URL of a server to test against: ``NNTERP_NDIF_HOST`` (one already running), else one started
    from the virtualenv ``NNTERP_NDIF_SERVER_VENV`` (state under ``home``, models written into ``HF_HOME``),
    stopped after; None when neither is set. Start-up and shutdown seconds go to ``NNTERP_NDIF_TIMINGS`` (a
    JSON file) when set."""
    if os.environ.get("NNTERP_NDIF_HOST"):
        yield os.environ["NNTERP_NDIF_HOST"]
        return
    from .models import write_models

    hf_home = Path(os.environ["HF_HOME"]).resolve()
    write_models(hf_home)
    server = NdifServer(Path(os.environ["NNTERP_NDIF_SERVER_VENV"]).resolve(), home.resolve(), hf_home)
    try:
        yield server.start()
    finally:
        server.stop()
        if os.environ.get("NNTERP_NDIF_TIMINGS"):
            Path(os.environ["NNTERP_NDIF_TIMINGS"]).write_text(json.dumps(server.timings, indent=2))


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # stop() runs on SIGTERM as on Ctrl-C
    server = NdifServer(Path(sys.argv[1]), Path(sys.argv[2]), Path(os.environ["HF_HOME"]))
    try:
        print(server.start(), server.timings, flush=True)
        signal.pause()
    finally:
        server.stop()
        print(server.timings)
