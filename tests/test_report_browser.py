"""The report and comparison pages in headless Chromium (system chromium + chromedriver, via Selenium).

Checks what a user relies on: rows present, filters, sorting, search, pagination, the mask toggle,
file names that stay text, and that the page sends no request anywhere (Chrome's performance log
records every request; only the page itself and its data: / folder pictures may appear).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_fixtures import EVIL_NAME, EVIL_PATH, make_shots, result_row, scan_run, store_rows

from ipad_qc.report import build_report, compare_runs
from ipad_qc.report.screenshot import browser_flags

webdriver = pytest.importorskip("selenium.webdriver", reason="browser tests need selenium (pip install -e '.[test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = {"a/clean.jpg": "clean", "a/sun.jpg": "bright", "b/sun2.jpg": "bright", "bad.jpg": "broken",
         EVIL_PATH: "bright", EVIL_NAME: "clean"}


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("headless browser tests need the Debian packages chromium and chromium-driver "
                    "(.ci/run installs them: apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*browser_flags(str(tmp_path_factory.mktemp("profile"))), "--window-size=1400,1000"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield browser
    browser.quit()


def open_page(driver, page: Path) -> None:
    driver.get_log("performance"), driver.get_log("browser")  # start from empty logs
    driver.get(page.as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def assert_offline_and_clean(driver, page: Path) -> None:
    """No request but the page file, its data: URIs and files in its folder; no console error (CSP reports)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            urls.append(message["params"].get("request", message["params"]).get("url", ""))
    folder = page.parent.resolve().as_uri() + "/"
    assert page.resolve().as_uri() in urls, "the performance log must at least record the page itself"
    # chrome:// and chrome-untrusted:// are the browser's own UI (the search box's clear icon, the new-tab
    # page Chromium 156 preloads), never the network.
    allowed = ("data:", folder, "chrome://", "chrome-untrusted://")
    assert [url for url in urls if not url.startswith(allowed)] == []
    assert [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def rows(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#rows tbody tr")


def texts(driver, selector: str) -> list[str]:
    return [node.text for node in driver.find_elements(By.CSS_SELECTOR, selector)]


def choose(driver, select_id: str, value: str) -> None:
    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    return build_report(scan_run(make_shots(base / "shots", SHOTS), base / "run")).path


def test_rows_filters_sort_and_search(driver, report_page: Path) -> None:
    open_page(driver, report_page)
    assert len(rows(driver)) == len(SHOTS) and driver.find_element(By.ID, "count").text == "6 images"
    assert set(texts(driver, "#rows .path")) == set(SHOTS)
    choose(driver, "filter-label", "flare")
    assert sorted(texts(driver, "#rows .path")) == sorted(["a/sun.jpg", "b/sun2.jpg", EVIL_PATH])
    choose(driver, "filter-label", "")
    choose(driver, "filter-status", "error")
    assert texts(driver, "#rows .path") == ["bad.jpg"] and texts(driver, "#rows .error-text")[0]
    choose(driver, "filter-status", "")
    driver.find_element(By.CSS_SELECTOR, "th[data-col=score_flare]").click()
    flare = [float(text) for text in texts(driver, "td.c-score_flare") if text != "–"]
    assert flare == sorted(flare, reverse=True) and flare[0] > flare[-1]
    assert driver.find_element(By.CSS_SELECTOR, "th[data-col=score_flare]").get_attribute("aria-sort") == "descending"
    driver.find_element(By.CSS_SELECTOR, "th[data-col=score_flare]").click()
    flare = [float(text) for text in texts(driver, "td.c-score_flare") if text != "–"]
    assert flare == sorted(flare)
    driver.find_element(By.ID, "search").send_keys("SUN2")
    assert texts(driver, "#rows .path") == ["b/sun2.jpg"]
    assert_offline_and_clean(driver, report_page)


def test_malicious_file_names_stay_text(driver, report_page: Path) -> None:
    open_page(driver, report_page)
    assert driver.execute_script("return window.pwned") is None
    assert {EVIL_NAME, EVIL_PATH} <= set(texts(driver, "#rows .path"))
    sources = driver.execute_script("return [...document.images].map((img) => img.getAttribute('src'))")
    assert sources and all(src.startswith("data:image/") for src in sources)
    assert driver.find_elements(By.CSS_SELECTOR, "script") and len(driver.find_elements(By.TAG_NAME, "script")) == 2
    assert_offline_and_clean(driver, report_page)


def test_mask_toggle_in_table_and_large_view(driver, report_page: Path) -> None:
    open_page(driver, report_page)
    choose(driver, "filter-label", "flare")
    overlays = driver.find_elements(By.CSS_SELECTOR, "#rows .overlay")
    assert len(overlays) == 3 and all(overlay.is_displayed() for overlay in overlays)
    driver.find_element(By.ID, "masks").click()
    assert not any(overlay.is_displayed() for overlay in overlays)
    driver.find_element(By.ID, "masks").click()
    driver.find_element(By.CSS_SELECTOR, "#rows tbody tr:first-child .fig").click()
    assert driver.execute_script("return document.getElementById('viewer').open")
    first_title = driver.find_element(By.ID, "viewer-title").text
    big = driver.find_element(By.CSS_SELECTOR, "#viewer-body .overlay")
    assert big.is_displayed() and driver.execute_script("return arguments[0].naturalWidth", big) > 0
    driver.find_element(By.ID, "viewer-masks").click()
    assert not driver.find_element(By.CSS_SELECTOR, "#viewer-body .overlay").is_displayed()
    driver.find_element(By.ID, "viewer-next").click()
    assert driver.find_element(By.ID, "viewer-title").text != first_title
    assert not driver.find_element(By.CSS_SELECTOR, "#viewer-body .overlay").is_displayed(), "toggle persists"
    driver.find_element(By.ID, "viewer-close").click()
    assert_offline_and_clean(driver, report_page)


def test_pagination_of_many_rows(driver, tmp_path: Path) -> None:
    many = [result_row(f"img_{i:03d}.jpg", "flare" if i % 3 == 0 else "clean", flare=0.6 if i % 3 == 0 else 0.1)
            for i in range(120)]
    page = build_report(store_rows(tmp_path / "run", many)).path
    open_page(driver, page)
    assert len(rows(driver)) == 50 and driver.find_element(By.ID, "count").text == "120 images"
    driver.find_element(By.ID, "page-next").click()
    driver.find_element(By.ID, "page-next").click()
    assert len(rows(driver)) == 20 and driver.find_element(By.ID, "page-info").text == "page 3 of 3"
    choose(driver, "filter-label", "flare")
    assert len(rows(driver)) == 40 and driver.find_element(By.ID, "page-info").text == "page 1 of 1"
    assert_offline_and_clean(driver, page)


def test_folder_layout_loads_its_thumbnails(driver, report_page: Path, tmp_path: Path) -> None:
    run = shutil.copytree(report_page.parent, tmp_path / "run")
    page = build_report(run, layout="folder").path
    open_page(driver, page)
    loaded = driver.execute_script(
        "return [...document.querySelectorAll('#rows img.base')].map((img) => img.complete && img.naturalWidth)")
    assert len(loaded) == len(SHOTS) - 1 and all(loaded), "every decodable image has its thumbnail"
    assert_offline_and_clean(driver, page)


def test_compare_page(driver, tmp_path: Path) -> None:
    first = scan_run(make_shots(tmp_path / "s1", {"x.jpg": "clean", "y.jpg": "clean", "z.jpg": "bright"}),
                     tmp_path / "v1")
    second = scan_run(make_shots(tmp_path / "s2", {"x.jpg": "bright", "y.jpg": "clean", "w.jpg": "clean"}),
                      tmp_path / "v2")
    page = compare_runs(first, second, tmp_path / "cmp").page.path
    open_page(driver, page)
    assert driver.find_element(By.ID, "verdict").text == "1 image(s) got worse"
    assert texts(driver, "#rows .c-key .path") == ["x.jpg", "z.jpg", "w.jpg"], "regressions first"
    assert texts(driver, "#rows .c-verdict")[0] == "regression"
    choose(driver, "filter-verdict", "only_b")
    assert texts(driver, "#rows .c-key .path") == ["w.jpg"]
    choose(driver, "filter-verdict", "")
    first_row = rows(driver)[0]
    assert len(first_row.find_elements(By.CSS_SELECTOR, ".fig img.base")) == 2
    first_row.find_element(By.CSS_SELECTOR, "td.c-b .fig").click()
    overlays = driver.find_elements(By.CSS_SELECTOR, "#viewer-body .overlay")
    assert len(overlays) == 1 and overlays[0].is_displayed(), "x.jpg has a mask in B only"
    driver.find_element(By.ID, "viewer-masks").click()
    assert not overlays[0].is_displayed()
    driver.find_element(By.ID, "viewer-close").click()
    assert_offline_and_clean(driver, page)
