"""The rendered compatibility site as a person sees it, in headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nnterp.compat.render import render_site
from tests.compat_sample import (
    ATTN_FAILURE,
    EVIL_ARCHITECTURE,
    EVIL_MODEL,
    FAILURE,
    HISTORY_ARCHITECTURES,
    HISTORY_TRANSFORMERS,
    history_architecture,
    write_history,
    write_reports,
)

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
    assert f"{EVIL_MODEL} real, text-generation" in models
    with pytest.raises(NoAlertPresentException):
        _ = newest_page.switch_to.alert.text  # raises: the hostile model id opened no alert


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


# -- the matrix page: 200 architectures across 7 version sets ------------------------------------


@pytest.fixture(scope="module")
def history_site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    write_history(folder / "reports")
    return render_site([folder / "reports"], folder / "site")


@pytest.fixture
def matrix_page(browser, history_site: Path):
    """The matrix page, reached from the index's link, in a laptop-sized window."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1366, 900)
    browser.get(history_site.as_uri())
    browser.find_element(By.ID, "matrix-link").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Architectures across version sets"
    return browser


def _shown_architectures(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_element(By.CSS_SELECTOR, "th.arch").text
            for row in browser.find_elements(By.CSS_SELECTOR, "#history tr.arch-row") if row.is_displayed()]


def _cell(browser, architecture: str, column: int):
    """The cell of an architecture's row in a column (0: the oldest version set)."""
    from selenium.webdriver.common.by import By

    for row in browser.find_elements(By.CSS_SELECTOR, "#history tr.arch-row"):
        if row.find_element(By.CSS_SELECTOR, "th.arch").text == architecture:
            return row.find_elements(By.CSS_SELECTOR, "td.summary")[column]
    raise AssertionError(f"no row for {architecture}")


def test_matrix_has_a_row_per_architecture_and_columns_oldest_first(matrix_page):
    from selenium.webdriver.common.by import By

    assert len(_shown_architectures(matrix_page)) == HISTORY_ARCHITECTURES
    headings = [th.text.splitlines()[0] for th in matrix_page.find_elements(By.CSS_SELECTOR, "#history th.column")]
    assert headings == [f"transformers {version}" for version in HISTORY_TRANSFORMERS]
    assert _shown_architectures(matrix_page)[-1] == EVIL_ARCHITECTURE  # shown as text, not an image tag
    assert matrix_page.find_element(By.ID, "shown").text == "200 of 200 architectures shown"
    assert matrix_page.execute_script(  # readable without scrolling sideways
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_regressions_and_fixes_look_different(matrix_page):
    from selenium.webdriver.common.by import By

    regressed = matrix_page.find_elements(By.CSS_SELECTOR, "#history td.trend-regressed")
    fixed = matrix_page.find_elements(By.CSS_SELECTOR, "#history td.trend-fixed")
    assert len(regressed) == 24 and len(fixed) == 8
    last = _cell(matrix_page, history_architecture(10), len(HISTORY_TRANSFORMERS) - 1)
    assert last.text.splitlines() == ["\u25bc 5/6", "attn_probs FAIL"]
    assert "lost attn_probs since" in last.get_attribute("title") and ATTN_FAILURE in last.get_attribute("title")
    plain = _cell(matrix_page, history_architecture(10), 0)
    assert plain.text == "6/6 pass\n2 not run"  # the sample runs 6 of the catalogue's 8 checks: partial, said so
    looks = {cell.value_of_css_property("box-shadow") for cell in (regressed[0], fixed[0], plain)}
    assert len(looks) == 3  # a red bar, a green bar, none
    assert _cell(matrix_page, history_architecture(1), 3).text == "\u25b2 6/6 pass\n2 not run"


def test_header_stays_in_view_when_scrolling(matrix_page):
    matrix_page.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    top = matrix_page.execute_script("return document.querySelector('#history thead th.column')"
                                     ".getBoundingClientRect().top")
    assert abs(top) < 1


@pytest.mark.parametrize(("architecture", "column"), [(history_architecture(10), 6), (EVIL_ARCHITECTURE, 2)])
def test_a_cell_opens_its_row_on_the_version_set_page(matrix_page, architecture: str, column: int):
    from selenium.webdriver.common.by import By

    link = _cell(matrix_page, architecture, column).find_element(By.TAG_NAME, "a")
    matrix_page.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    assert matrix_page.find_element(By.TAG_NAME, "h1").text.startswith(
        f"nnterp 0.1.0, transformers {HISTORY_TRANSFORMERS[column]}")
    target = matrix_page.execute_script("return document.querySelector(':target')")
    assert target.find_element(By.CSS_SELECTOR, "td.architecture").text == architecture
    header = matrix_page.execute_script("return document.querySelector('#matrix thead th')"
                                        ".getBoundingClientRect().bottom")  # sticky: it covers the rows below
    box = matrix_page.execute_script("return arguments[0].getBoundingClientRect()", target)
    assert header <= box["top"] and box["bottom"] <= matrix_page.execute_script("return window.innerHeight")


def test_matrix_filter_and_regression_toggle(matrix_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    box, show = matrix_page.find_element(By.ID, "filter"), Select(matrix_page.find_element(By.ID, "show"))
    box.send_keys("arch01")
    assert _shown_architectures(matrix_page) == [history_architecture(i) for i in range(10, 20)]
    show.select_by_value("regressed")
    assert _shown_architectures(matrix_page) == [history_architecture(10)]
    box.send_keys(Keys.BACKSPACE * len("arch01"))
    regressed = [history_architecture(i) for i in sorted({*range(0, 200, 10), 3, 53, 103, 153})]
    assert _shown_architectures(matrix_page) == regressed
    assert matrix_page.find_element(By.ID, "shown").text == "24 of 200 architectures shown"
    show.select_by_value("fixed")
    assert _shown_architectures(matrix_page) == [history_architecture(i) for i in range(1, 200, 25)]
    show.select_by_value("")
    assert len(_shown_architectures(matrix_page)) == HISTORY_ARCHITECTURES
