"""The cube view in a real browser: a finished run's page links to it, the worker computes
the view ("computing…" first), the 3D lattice and the cosine chart draw, and the step slider
changes the colours shown. The projector draws its three clouds. A screenshot lands in
test-artifacts/cube_view.png. The new-run form shows the pre-flight estimate."""

from __future__ import annotations

import time

import pytest

from tests.conftest import api_call, dialogue_jsonl
from tests.e2e.test_browser import ARTIFACTS, browser, page, sign_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

CONFIG = {"task": "dialogue", "seed": 0, "cube": {"lattice": [4, 4, 6], "steps": 3, "state_dim": 8, "hidden_dim": 16},
          "train": {"epochs": 2, "batch_size": 4, "val_fraction": 0.25, "device": "cpu"},
          "teachers": [{"name": "minilm"}]}


def finished_run(base_url: str, token: str) -> int:
    status, dataset = api_call(base_url, "/api/v1/datasets/", token, "POST", fields={"name": "cube qa", "kind": "dialogue"},
                               files={"file": ("qa.jsonl", dialogue_jsonl(24))})
    assert status == 201, dataset
    status, run = api_call(base_url, "/api/v1/runs/", token, "POST",
                           json_body={"name": "cube view run", "dataset": dataset["id"], "config": CONFIG})
    assert status == 201, run
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, detail = api_call(base_url, f"/api/v1/runs/{run['id']}/", token)
        if detail["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
            assert detail["status"] == "succeeded", detail
            return run["id"]
        time.sleep(0.5)
    raise TimeoutError(f"run {run['id']} did not finish")


def colours(page) -> list[float]:
    return page.evaluate("document.getElementById('cube-plot').data[0].marker.color.slice()")


def test_the_cube_view_steps_through_propagation(page, platform_user, celery_worker, daphne_server):
    run_id = finished_run(daphne_server, platform_user.token)
    sign_in(page, platform_user)
    page.goto(f"/runs/{run_id}/")
    page.click("#cube-view-link")
    page.wait_for_selector("#cube-status")
    page.wait_for_function("document.getElementById('cube-plot').data !== undefined", timeout=60_000)
    assert "Validation example 0" in page.inner_text("#cube-status")
    assert len(colours(page)) == 96  # every cell of the 4×4×6 lattice
    cosine = page.evaluate("document.getElementById('cosine-plot').data[0].y.length")
    assert cosine == 4  # the input and the output after each of 3 steps
    last = colours(page)
    page.eval_on_selector("#step-slider", "s => { s.value = '1'; s.dispatchEvent(new Event('input')); }")
    assert page.inner_text("#step-label") == "1"
    assert colours(page) != last
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "cube_view.png"), full_page=True)

    page.select_option("#channel", "2")  # another colour: a new computation, then drawn
    page.click("#cube-form button[type=submit]")
    page.wait_for_function("JSON.stringify(document.getElementById('cube-plot').layout.title).includes('channel 2')",
                           timeout=60_000)

    page.goto(f"/runs/{run_id}/projector/")
    page.wait_for_function("document.getElementById('projector-plot').data !== undefined", timeout=60_000)
    names = page.evaluate("document.getElementById('projector-plot').data.map(t => t.name)")
    assert names[:3] == ["question", "answer", "output"]
    assert page.evaluate("document.getElementById('projector-plot').data[0].text[0]").endswith(")")  # the sentence


def test_the_new_run_form_shows_the_estimate(page, platform_user, daphne_server):
    sign_in(page, platform_user)
    page.goto("/runs/new/")
    page.select_option("#id_queue", "cpu")
    page.fill("#id_config_yaml", "task: dialogue\ncube: {lattice: [4, 4, 6], steps: 3}\n"
                                 "train: {epochs: 1, batch_size: 4}\nteachers: [{name: minilm}]\n")
    page.wait_for_selector("#config-estimate", state="visible")
    text = page.inner_text("#config-estimate")
    assert "parameters" in text and "of activations per batch" in text and "per epoch on the cpu queue" in text
