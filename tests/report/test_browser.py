"""The HTML report in a real headless browser (Debian's chromium, driven by Playwright).

A comparison of the reference worker and the real Locust worker is opened from disk: the matrix has a row
per case and a column per implementation with the verdicts of results.json, the filters work, every case page
loads with its picture and wire log, links resolve, and no page logs a console error. Screenshots are kept in
reports/browser-test/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.report import compare_runs

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "reports" / "browser-test"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def comparison(reference_run: Path, locust_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "report"
    compare_runs([reference_run, locust_run], out)
    return out


@pytest.fixture
def browser_page(chromium: str, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            page.on(
                "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            yield page, problems
        finally:
            browser.close()


def _visible_rows(page: Any) -> int:
    return int(page.locator("#matrix tr.case:visible").count())


def test_the_matrix_and_case_pages_in_a_real_browser(comparison: Path, browser_page: tuple[Any, list[str]]) -> None:
    page, problems = browser_page
    matrix = json.loads((comparison / "compare.json").read_text())
    labels = [i["label"] for i in matrix["implementations"]]
    page.goto((comparison / "index.html").as_uri())

    assert page.locator("#matrix thead th.col").all_inner_texts() == labels
    rows = page.locator("#matrix tbody tr.case")
    assert rows.count() == len(matrix["cases"])
    for i, (case_id, verdicts) in enumerate(matrix["cases"].items()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[0] == case_id
        assert cells[3:] == [v or "—" for v in verdicts.values()], case_id
    shutil.rmtree(SHOTS, ignore_errors=True)  # no stale screenshot can stand in for this run's
    SHOTS.mkdir(parents=True)
    page.screenshot(path=str(SHOTS / "matrix.png"), full_page=True)

    failed = sum(1 for v in matrix["cases"].values() if "FAILED" in v.values())
    differ = sum(1 for v in matrix["cases"].values() if len(set(v.values())) > 1)
    assert failed >= 1 and differ >= 1, "the two workers should disagree somewhere (Locust's own fails malformed/01)"
    page.select_option("#f-verdict", "FAILED")
    assert _visible_rows(page) == failed
    page.select_option("#f-verdict", "")
    page.check("#f-differ")
    assert _visible_rows(page) == differ
    page.uncheck("#f-differ")
    page.select_option("#f-category", "heartbeat")
    assert _visible_rows(page) == sum(1 for c in matrix["cases"] if c.startswith("heartbeat/"))
    page.select_option("#f-category", "")
    page.select_option("#f-kind", "robustness")  # input the stock master never sends: malformed frames, floods
    assert _visible_rows(page) == sum(1 for c in matrix["cases"] if c.startswith(("malformed/", "storms/"))) >= 1
    page.select_option("#f-kind", "")
    assert page.locator("div.causes").evaluate_all("ds => ds.map(d => d.dataset.run)") == labels  # per implementation
    assert "progress" in page.inner_text("div.causes[data-run='locust']")  # its malformed/01 failure, grouped
    page.fill("#f-text", "garbage")
    assert _visible_rows(page) == 1 and "showing 1 of" in page.inner_text("#shown")
    page.fill("#f-text", "")

    for href in page.locator("#runs a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        assert (comparison / href).is_file(), f"broken link {href}"
    hrefs = page.locator("#matrix td.v a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert len(hrefs) == sum(1 for v in matrix["cases"].values() for x in v.values() if x)
    for href in hrefs:
        page.goto((comparison / href).as_uri())
        case_id = page.locator("h1 .mono").inner_text()
        label = href.split("/")[1]
        assert page.inner_text("#verdict") == matrix["cases"][case_id][label], href
        case = json.loads((comparison / href).parent.joinpath("result.json").read_text())
        if case["timeline"].get("acked_at") is not None:  # heartbeats were due: there must be a picture
            box = page.locator("#timeline svg").bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100, href
        else:
            assert "No picture" in page.inner_text("#no-timeline"), href
        assert page.locator("#wire tbody tr").count() > 3, href
        assert page.locator("#findings tr").count() >= 2, href
        for name in page.locator("dl.facts a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
            assert (comparison / href).parent.joinpath(name).is_file(), f"{href}: broken link {name}"

    page.goto((comparison / "runs" / "locust" / "cases" / "malformed__01-garbage" / "index.html").as_uri())
    assert page.inner_text("#verdict") == "FAILED"
    assert "msgpack" in page.inner_text("#findings")
    details = page.locator("#wire details").first
    details.locator("summary").click()
    assert details.get_attribute("open") is not None, "a payload expands"
    page.uncheck("#f-heartbeats")
    assert page.locator("#wire tbody tr[data-type='heartbeat']:visible").count() == 0
    page.check("#f-heartbeats")
    page.screenshot(path=str(SHOTS / "case-locust-malformed-01.png"), full_page=False)
    page.click("a.badge")  # the same case on the other implementation
    assert page.inner_text("#verdict") == "OK"
    page.click("#back")
    assert page.locator("#matrix").count() == 1

    assert problems == [], "\n".join(problems)
    for shot in ("matrix.png", "case-locust-malformed-01.png"):
        assert (SHOTS / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (SHOTS / shot).stat().st_size > 10_000
