"""The rendered compatibility site as a person sees it, in headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nnterp.compat.render import render_site
from tests.compat_sample import EVIL_MODEL, FAILURE, write_reports

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("install chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="install selenium: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path_factory.mktemp("chromium-profile")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compat")
    write_reports(folder / "reports")
    return render_site([folder / "reports"], folder / "site")


@pytest.fixture
def newest_page(browser, site: Path):
    """Open the index, then follow its first link (the newest version set)."""
    from selenium.webdriver.common.by import By

    browser.get(site.as_uri())
    assert len(browser.find_elements(By.CSS_SELECTOR, "#version-sets tr.version-set")) == 2
    browser.find_element(By.CSS_SELECTOR, "#version-sets tr.version-set a").click()
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("nnterp 0.1.0, transformers 5.23.0")
    return browser


def _visible_rows(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#matrix tr.model-row")
    return [row.find_element(By.CSS_SELECTOR, "td.architecture").text for row in rows if row.is_displayed()]


def _visible_messages(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [m.text for m in browser.find_elements(By.CSS_SELECTOR, "tr.details .msg") if m.is_displayed()]


def test_matrix_shows_every_model_and_the_counts(newest_page):
    from selenium.webdriver.common.by import By

    assert _visible_rows(newest_page) == ["BloomForCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM",
                                          "MistralForCausalLM"]
    counts = newest_page.find_element(By.ID, "counts").text
    assert "4 architectures" in counts and "5 passed" in counts and "1 failed" in counts
    assert newest_page.find_element(By.ID, "shown").text == "4 of 4 models shown"


def test_failure_message_is_visible(newest_page):
    from selenium.webdriver.common.by import By

    cell = newest_page.find_element(By.CSS_SELECTOR, "td.st-failed[data-check='residual_identity']")
    assert cell.is_displayed() and cell.text.startswith("FAIL")
    assert cell.get_attribute("title") == FAILURE
    assert FAILURE in _visible_messages(newest_page)


def test_model_id_shows_as_text_not_script(newest_page):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    models = [cell.text for cell in newest_page.find_elements(By.CSS_SELECTOR, "#matrix td.model")]
    assert f"{EVIL_MODEL} real" in models
    with pytest.raises(NoAlertPresentException):
        newest_page.switch_to.alert.text


def test_filter_hides_rows_that_do_not_match(newest_page):
    from selenium.webdriver.common.by import By

    box = newest_page.find_element(By.ID, "filter")
    box.send_keys("llama")
    assert _visible_rows(newest_page) == ["LlamaForCausalLM"]
    assert newest_page.find_element(By.ID, "shown").text == "1 of 4 models shown"
    assert _visible_messages(newest_page) == [FAILURE]  # llama's failure stays in view, the others go
    box.clear()
    box.send_keys("TOY:")
    assert _visible_rows(newest_page) == ["BloomForCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM"]
    box.send_keys("nothing-matches")
    assert _visible_rows(newest_page) == []
    assert _visible_messages(newest_page) == []
