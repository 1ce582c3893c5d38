"""The comparison page in a real browser (Debian's Chromium via Playwright) against Django's
live server: filter the runs table with the query language, select three runs, see three
curves per metric, the team's baseline run as a reference line, the config diff and the summary; zoom a chart and get full resolution
for the zoomed range. A screenshot lands in test-artifacts/compare.png."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = ROOT / "test-artifacts"
STEPS = 3000


@pytest.fixture
def compare_runs(make_dataset, alice, bob):  # make_dataset first: it picks the password hasher
    from webapp.runs.models import MetricPoint, Run

    dataset = make_dataset(alice, name="faq")
    runs = []
    for index, (steps, lr, seed) in enumerate([(4, 1e-3, 1), (8, 1e-3, 1), (8, 3e-4, 2), (16, 1e-3, 3)]):
        config = {"task": "dialogue", "seed": seed, "cube": {"lattice": [4, 4, 4], "steps": steps},
                  "train": {"lr": lr, "epochs": 3}, "teachers": [{"name": "minilm"}]}
        x = np.arange(STEPS)
        loss = np.exp(-x / (500.0 * (index + 1))) + 0.01 * index
        run = Run.objects.create(name=f"lattice {steps} lr {lr}", owner=alice, dataset=dataset, config=config,
                                 status="succeeded", last_step=STEPS - 1,
                                 summary={"val/qa_cosine": 0.5 + 0.1 * index, "baseline/identity/val/qa_cosine": 0.3,
                                          "baseline/linear/val/qa_cosine": 0.45})
        points = [MetricPoint(run=run, key="train/loss", step=int(s), value=float(v), time=1e9 + s)
                  for s, v in zip(x, loss)]
        points += [MetricPoint(run=run, key="val/qa_cosine", step=int(s), value=0.4 + 0.1 * index + s / 30000,
                               time=1e9 + s) for s in range(0, STEPS, 300)]
        MetricPoint.objects.bulk_create(points)
        runs.append(run)
    Run.objects.filter(pk=runs[0].pk).update(is_baseline=True)  # the team's reference run
    other = make_dataset(bob, name="bob data")
    Run.objects.create(name="bob's secret", owner=bob, dataset=other, config={"cube": {"steps": 8}}, status="succeeded")
    return runs


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (the project's setup installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM is not used meanwhile.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_it_compares_three_runs_in_the_browser(compare_runs, live_server, browser):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/accounts/login/?next=/compare/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("#runs-body tr")
    assert page.locator("#runs-body tr").count() == 4  # bob's run is not listed

    # The query language narrows the table; a bad query says where it went wrong.
    page.fill("#query", "cube.steps >= 8 and")
    page.click("#query-form button[type=submit]")
    page.wait_for_selector("#query-error:not([hidden])")
    assert "column 20" in page.inner_text("#query-error")
    page.fill("#query", "cube.steps >= 8 or train.lr < 0.001")
    page.click("#query-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#runs-body tr').length === 3")

    for run in compare_runs[1:]:
        page.check(f"#runs-body input[data-run-id='{run.pk}']")
    page.wait_for_function("window.compareState.ready && document.querySelectorAll('#summary-table tbody tr').length === 3")
    selected = [run.pk for run in compare_runs[1:]]
    assert f"runs={','.join(map(str, selected))}" in page.url  # shareable
    full = page.get_attribute("#export-curves-full", "href")  # every stored point, next to the shown ones
    assert "full=1" in full and f"runs={'%2C'.join(map(str, selected))}" in full

    curves = page.evaluate("Array.from(document.querySelectorAll('#charts .chart')).map(d => "
                           "[d.dataset.key, d.data.filter(t => (t.meta || '').startsWith('run-')).length])")
    assert dict(curves)["train/loss"] == 3 and dict(curves)["val/qa_cosine"] == 3
    baselines = page.evaluate("document.querySelector('[data-key=\"val/qa_cosine\"]').layout.shapes.length")
    assert baselines == 3  # identity and linear reference lines, and the team's baseline run (not selected)
    labels = page.evaluate("document.querySelector('[data-key=\"val/qa_cosine\"]').layout.annotations.map(a => a.text)")
    assert f"team baseline: {compare_runs[0].name}" in labels
    diff_keys = page.eval_on_selector_all("#config-diff tbody tr", "rows => rows.map(r => r.dataset.key)")
    assert diff_keys == ["cube.steps", "seed", "train.lr"]  # only what differs
    page.locator("#parcoords").scroll_into_view_if_needed()  # drawn once in view
    page.wait_for_function("document.getElementById('parcoords').dataset.drawn === '1'")
    dimensions = page.evaluate("document.getElementById('parcoords').data[0].dimensions.map(d => d.label)")
    assert dimensions == ["cube.steps", "seed", "train.lr", "val/qa_cosine (last)"]

    # Zoom the loss chart: the zoomed range comes back at full resolution.
    page.evaluate("Plotly.relayout(document.querySelector('[data-key=\"train/loss\"]'), {'xaxis.range': [1000, 1400]})")
    page.wait_for_function("document.querySelector('[data-key=\"train/loss\"]').dataset.zoomFetches === '1'")
    xs = page.evaluate("document.querySelector('[data-key=\"train/loss\"]').data"
                       ".filter(t => (t.meta || '').startsWith('run-'))[0].x")
    assert xs == list(range(1000, 1401))

    # The shared URL rebuilds the same view in a fresh tab.
    second = context.new_page()
    second.goto(page.url)
    second.wait_for_function("window.compareState.ready")
    assert second.locator("#config-diff tbody tr").count() == 3

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("Plotly.relayout(document.querySelector('[data-key=\"train/loss\"]'), {'xaxis.autorange': true})")
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_a_shared_url_restores_grouping_and_the_time_axis(compare_runs, live_server, browser):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password-1")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    # Runs 1 and 2 differ only in cube.steps: grouped by it they become one mean ± std band.
    first, second = compare_runs[0].pk, compare_runs[1].pk
    page.goto(f"/compare/?runs={first},{second}&keys=train/loss&group_by=cube.steps&x=time&smooth=0.5")
    page.wait_for_function("window.compareState.ready")
    assert page.input_value("#group-by") == "custom" and page.input_value("#group-key") == "cube.steps"
    chart = "document.querySelector('[data-key=\"train/loss\"]')"
    traces = page.evaluate(f"{chart}.data.map(t => [t.meta || '', t.fill || ''])")
    assert ["group", ""] in traces and ["", "tonexty"] in traces  # the mean and its band
    assert not any(meta.startswith("run-") for meta, _ in traces)
    assert page.evaluate(f"{chart}.layout.xaxis.type") == "date"
    assert page.input_value("#smoothing") == "0.5"
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
