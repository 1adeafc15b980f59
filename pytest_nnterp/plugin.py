"""pytest_nnterp entry point (``pytest11``): hooks stay a few lines and hand off to one NnterpSession.

Importing this module imports only pytest: torch, transformers and nnsight load when the options
select models, so a pytest run that does not use the plugin is not slowed down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .options import PROPERTY, add_options, read_selection

SESSION = "nnterp_session"
SUITE = str(Path(__file__).with_name("suite.py"))


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nnterp_category(name): record this test's outcome in the nnterp "
                                       "compatibility report under the check `name`")
    selection = read_selection(config)
    if not selection.active:
        return
    from .session import NnterpSession
    from .workers import share_cores_between_workers

    share_cores_between_workers(config)

    config.pluginmanager.register(NnterpSession(config, selection), SESSION)
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [SUITE]  # no test path given: run the built-in checks only
    elif SUITE not in config.args:
        config.args.append(SUITE)


def _session(config: pytest.Config):
    return config.pluginmanager.get_plugin(SESSION)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = _session(metafunc.config)
    if session is None or not {"nnterp_target", "nnterp_model"} & set(metafunc.fixturenames):
        return
    if "nnterp_check_name" in metafunc.fixturenames:
        params = [pytest.param(target, check, id=f"{target.label}-{check}",
                               marks=pytest.mark.xdist_group(target.label))
                  for target in session.targets for check in session.checks]
        metafunc.parametrize(("nnterp_target", "nnterp_check_name"), params)
    else:
        metafunc.parametrize("nnterp_target", [pytest.param(t, id=t.label, marks=pytest.mark.xdist_group(t.label))
                                               for t in session.targets])


@pytest.fixture
def nnterp_outcome(request: pytest.FixtureRequest):
    """Run a built-in check and attach its outcome to the test report (for the controller's report)."""
    session = _session(request.config)

    def run(target, check):
        row = session.outcome(target, check)
        request.node.user_properties.append((PROPERTY, row))
        return row
    return run


@pytest.fixture
def nnterp_model(request: pytest.FixtureRequest, nnterp_target):
    """The StandardizedTransformer of the selected model, loaded once per process and shared across tests."""
    loaded = _session(request.config).runner.load(nnterp_target)
    if loaded.skipped:
        pytest.skip(loaded.skipped)
    if loaded.error:
        pytest.fail(f"load error: {loaded.error}", pytrace=False)
    return loaded.model


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    session = _session(item.config)
    if session is not None:
        session.annotate(item, outcome.get_result())
