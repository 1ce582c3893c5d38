"""The sweep pages in a real browser (Debian's Chromium via Playwright) against Django's live
server: the new-sweep form validates the search space inline and names the bad key; the sweep
page ranks its trials, draws the history and importance plots, and its stop button stops it.
A screenshot lands in test-artifacts/sweep.png."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.conftest import ROOT
from tests.e2e.test_compare_browser import browser  # noqa: F401  (the Chromium fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
BASE = """task: dialogue
seed: 3
cube: {lattice: [8, 8, 6], steps: 2}
train: {epochs: 1, batch_size: 8}
teachers: [{name: minilm}]
"""
SPACE = "train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\ncube.steps: {type: int, low: 2, high: 8}\n"


@pytest.fixture
def sweep(make_dataset, alice, monkeypatch):
    from webapp.runs.models import Run
    from webapp.sweeps.actions import create_sweep

    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
    sweep = create_sweep(alice, name="lr sweep", dataset=make_dataset(alice), base_config_yaml=BASE,
                         search_space=SPACE, method="random", budget=5, parallelism=5)
    for trial, value in zip(sweep.trials.order_by("number"), [0.3, 0.8, 0.5, 0.6]):
        Run.objects.filter(pk=trial.run_id).update(status="succeeded", finished_at=timezone.now(),
                                                   summary={"val/qa_cosine": value})
    return sweep


def test_the_sweep_pages_work_in_the_browser(sweep, live_server, browser):  # noqa: F811
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/accounts/login/?next=/sweeps/new/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password-1")
    page.click("button[type=submit]")
    page.fill("#id_base_config_yaml", BASE)
    page.fill("#id_search_space_yaml", "cube.stpes: {type: int, low: 2, high: 4}\n")
    page.wait_for_selector("#sweep-errors:not([hidden]) li")
    assert "cube.stpes" in page.inner_text("#sweep-errors")
    page.fill("#id_search_space_yaml", SPACE)
    page.wait_for_selector("#sweep-ok:not([hidden])")

    page.goto(f"/sweeps/{sweep.pk}/")
    page.wait_for_function("window.sweepState && window.sweepState.polls >= 1")
    ranks = page.locator("#trials tbody tr td:first-child").all_inner_texts()
    assert ranks == ["1", "2", "3", "4", ""]
    first = page.locator("#trials tbody tr").first
    assert first.get_attribute("data-trial") == "1" and "0.8" in first.inner_text()
    page.wait_for_selector("#history-plot .main-svg")
    page.wait_for_selector("#importance-plot .main-svg")
    assert page.locator("#history-plot .scatterlayer .point").count() >= 4
    assert page.locator("#importance-plot .bars .point").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sweep.png"), full_page=True)

    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#stop-card button[data-mode=cancel]")
    page.wait_for_function("window.sweepState.status === 'stopped'")
    assert page.inner_text("#sweep-status") == "stopped"
    assert errors == []
