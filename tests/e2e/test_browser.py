"""A real browser against the real platform: Daphne, Redis, a Celery worker and Chromium.

One story, start to finish: sign in, upload a dataset, write a config (first with a typo the
page flags inline), queue the run, watch the loss chart grow while it trains, zoom it and see
the zoom survive further updates, drop the websocket and see the page reconnect and backfill
without gaps or duplicates, and see the run succeed. A screenshot lands in test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, dialogue_jsonl

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = ROOT / "test-artifacts"

# This tiny cube trains at 20 to 300+ steps/s depending on the machine, so the run's length is
# set by a time budget, not by its epochs: it trains for one minute on any machine, long enough
# to watch, zoom and reconnect. One chart point per 20 steps keeps the chart at 60 to ~1000 points.
LOG_EVERY = 20
RUN_CONFIG = f"""\
task: dialogue
seed: 3
cube: {{lattice: [4, 4, 4], steps: 4}}
train: {{epochs: 100000, max_minutes: 1, batch_size: 4, val_fraction: 0.25,
        log_every: {LOG_EVERY}, eval_every: 200, checkpoint_every: 5000}}
teachers: [{{name: minilm}}]
"""
TRAINING_TIMEOUT_MS = 240_000


def loss_points(page) -> int:
    return page.evaluate("document.getElementById('chart-loss').data.length"
                         " ? document.getElementById('chart-loss').data[0].x.length : 0")


def wait_for_more_loss_points(page, than: int, timeout: int = 60_000) -> int:
    page.wait_for_function(
        "n => { const d = document.getElementById('chart-loss').data; return d.length && d[0].x.length > n; }",
        arg=than, timeout=timeout,
    )
    return loss_points(page)


def x_range(page) -> list[float]:
    return page.evaluate("document.getElementById('chart-loss').layout.xaxis.range.slice()")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (the project's setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, daphne_server):
    context = browser.new_context(base_url=daphne_server, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def sign_in(page, user) -> None:
    page.goto("/")
    assert "/accounts/login/" in page.url  # every page asks for a sign-in first
    page.fill("#id_username", user.username)
    page.fill("#id_password", user.password)
    page.click("button[type=submit]")
    page.wait_for_selector("table#runs")  # the runs list, where sign-in leads


def upload_dataset(page, tmp_path, name: str) -> None:
    data = tmp_path / "support.jsonl"
    data.write_bytes(dialogue_jsonl(24))
    page.goto("/datasets/")
    page.fill("#id_name", name)
    page.select_option("#id_kind", "dialogue")
    page.set_input_files("#id_file", str(data))
    page.click("#upload button[type=submit]")
    page.wait_for_url(re.compile(r"/datasets/\d+/$"))
    assert page.inner_text("#rows") == "24"


def submit_run(page, dataset: str, config: str = RUN_CONFIG) -> None:
    page.goto("/runs/new/")
    page.fill("#id_name", "browser run")
    page.select_option("#id_dataset", label=dataset)
    page.select_option("#id_queue", "cpu")
    page.fill("#id_config_yaml", config.replace("steps: 4", "stpes: 4"))
    page.wait_for_selector("#config-errors li")  # validated as the user types
    assert "cube.stpes" in page.inner_text("#config-errors")
    page.fill("#id_config_yaml", config)
    page.wait_for_selector("#config-ok", state="visible")
    page.click("#new-run button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))


def test_it_trains_a_run_live_in_the_browser(page, platform_user, celery_worker, tmp_path):
    sign_in(page, platform_user)
    upload_dataset(page, tmp_path, "browser support chats")
    submit_run(page, "browser support chats")

    # The chart grows while the run is running: points arrive over the websocket.
    first = wait_for_more_loss_points(page, 2, timeout=TRAINING_TIMEOUT_MS)
    grown = wait_for_more_loss_points(page, first)
    assert grown > first
    assert page.inner_text("#status") == "running"

    # Zoom like a user; further updates extend the traces but keep the zoom.
    page.evaluate("n => Plotly.relayout('chart-loss', {'xaxis.range': [1, n]})", grown)
    assert x_range(page) == [1, grown]
    after_zoom = wait_for_more_loss_points(page, grown + 2)
    assert x_range(page) == [1, grown]
    assert page.evaluate("document.getElementById('chart-loss').layout.xaxis.autorange") is False

    # Drop the websocket: the page reconnects (backoff) and backfills what it missed.
    page.evaluate("window.cubelabRun.socket().close()")
    page.wait_for_function("document.getElementById('connection').textContent.startsWith('reconnecting')")
    page.wait_for_function("document.getElementById('connection').textContent === 'live'")
    wait_for_more_loss_points(page, after_zoom)

    page.wait_for_function("document.getElementById('status').textContent === 'succeeded'",
                           timeout=TRAINING_TIMEOUT_MS)
    run = page.evaluate("fetch(document.getElementById('run').dataset.apiUrl).then(r => r.json())")
    assert run["status"] == "succeeded" and run["last_step"] < run["total_steps"]  # ended by its time budget
    # Every logged step exactly once, in order: no gap from the reconnect, no duplicate from the backfill.
    logged = list(range(LOG_EVERY, run["last_step"] + 1, LOG_EVERY))
    page.wait_for_function("n => document.getElementById('chart-loss').data[0].x.length >= n", arg=len(logged))
    assert page.evaluate("document.getElementById('chart-loss').data[0].x") == logged
    assert x_range(page) == [1, grown]  # still the user's zoom at the end

    # Every loss term, and validation against both baselines (dashed), were drawn.
    loss_traces = page.evaluate("document.getElementById('chart-loss').data.map(t => t.name)")
    assert loss_traces[0] == "total" and len(loss_traces) >= 2
    val = page.evaluate("document.getElementById('chart-valqa_cosine').data"
                        ".map(t => [t.name, t.x.length, (t.line || {}).dash || 'solid'])")
    assert {name: dash for name, _, dash in val} == {
        "this run": "solid", "identity baseline": "dash", "linear baseline": "dot"}
    assert all(count >= 1 for _, count, _ in val)
    page.wait_for_selector("#checkpoints a[href*='/download']")
    page.wait_for_function("document.getElementById('connection').textContent === 'run finished'")
    assert page.is_hidden("#cancel")
    assert page.inner_text("#end-reason") == f"time budget of 1 min reached at step {run['last_step']}"
    assert "torch==" in page.inner_text("#repro-packages")  # recorded by the worker, shown live

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run_detail.png"), full_page=True)


def test_it_cancels_a_running_run_from_its_page(page, platform_user, celery_worker, tmp_path):
    sign_in(page, platform_user)
    upload_dataset(page, tmp_path, "chats to cancel")
    submit_run(page, "chats to cancel", RUN_CONFIG.replace("max_minutes: 1", "max_minutes: 10"))
    wait_for_more_loss_points(page, 2, timeout=TRAINING_TIMEOUT_MS)
    run_id = page.evaluate("document.getElementById('run').dataset.runId")
    runs_list = page.context.new_page()  # a second tab on the runs list, left open
    runs_list.goto("/")
    badge = f"tr[data-run-id='{run_id}'] [data-role=status]"
    assert runs_list.inner_text(badge) == "running"

    page.click("#cancel")  # a POST to the API with the page's CSRF token
    page.wait_for_function("document.getElementById('status').textContent === 'cancelled'", timeout=60_000)
    assert page.is_hidden("#cancel")
    page.wait_for_selector("#end-reason", state="visible")
    assert page.inner_text("#end-reason") == f"cancelled by {platform_user.username}"
    page.wait_for_selector("#checkpoints a[href*='/download']")  # the run saved where it stopped
    # The list updates itself (it polls the API): no reload.
    runs_list.wait_for_function(f"document.querySelector(\"{badge}\").textContent === 'cancelled'", timeout=15_000)
