"""Issue 7's "done when", as one story in a real browser against the real platform (Daphne,
Redis, a Celery worker, Chromium).

A team member signs in, uploads a small dialogue dataset and starts a grid sweep from the
new-sweep form: a tiny cube with the 32-D tiny BERT teacher, two keys (learning rate and
propagation steps), four trials, two at once. On the sweep page the ranking table fills while
the trials train, without a reload. The best trial's link leads to its run, the run to its cube
view, and stepping the propagation slider recolours the 3D lattice at every step. Screenshots
land in test-artifacts/sweep_story.png (the ranked sweep) and sweep_story_cube.png.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import api_call
from tests.e2e.test_browser import ARTIFACTS, browser, page, sign_in, upload_dataset  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

# A tiny trial trains in about a second, faster than the page polls (every 3 s), so each trial
# runs for a time budget of 6 s instead of a number of epochs: on any machine the table has
# several polls to show trials finishing one by one (the test platform's worker runs one task
# at a time). Sparse logging, evaluation and checkpoints keep that budget spent on training.
BASE_CONFIG = """\
task: dialogue
seed: 0
cube: {{lattice: [4, 4, 2], steps: 2, state_dim: 8, hidden_dim: 16}}
train: {{epochs: 10000, max_minutes: 0.1, batch_size: 8, val_fraction: 0.25, device: cpu,
        log_every: 20, eval_every: 200, checkpoint_every: 100000}}
teachers: [{{name: tiny-bert, path: "{teacher}", device: cpu}}]
"""
# Two keys, two grid points each: four trials. Both change the trained cube, so the ranking
# has four distinct values; `cube.steps` also sets how many slider steps the cube view has.
SEARCH_SPACE = """\
train.lr: {type: float, low: 0.0001, high: 0.01, values: [0.001, 0.01]}
cube.steps: {type: int, low: 2, high: 3}
"""
TRIALS = 4
SWEEP_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    from tests.trainer.tiny_models import build_tiny_teachers

    return build_tiny_teachers(tmp_path_factory.mktemp("story_teachers"))["bert"]


def start_sweep(page, dataset: str, teacher: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto("/sweeps/new/")
    page.fill("#id_name", "story sweep")
    page.select_option("#id_dataset", label=dataset)
    page.select_option("#id_queue", "cpu")
    page.select_option("#id_method", "grid")
    page.fill("#id_metric", "val/qa_cosine")
    page.select_option("#id_direction", "maximize")
    page.fill("#id_budget", str(TRIALS))
    page.fill("#id_parallelism", "2")
    page.uncheck("#id_pruning")  # every trial runs to the end, so the ranking holds all four
    page.fill("#id_base_config_yaml", BASE_CONFIG.format(teacher=teacher))
    page.fill("#id_search_space_yaml", SEARCH_SPACE)
    # Validated as the user types: the page says the grid's size. An answer about what was in
    # the form a moment earlier (the base config typed, the search space not yet) may show
    # first, so wait for the answer about the whole form.
    expected = f"Valid: the grid has {TRIALS} points."
    try:
        page.wait_for_function("text => { const ok = document.getElementById('sweep-ok');"
                               " return !ok.hidden && ok.textContent === text; }", arg=expected, timeout=20_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the form was not accepted: {page.inner_text('#sweep-ok')!r}, "
                             f"errors: {page.inner_text('#sweep-errors')!r}") from None
    assert page.is_hidden("#sweep-errors")
    page.click("#new-sweep button[type=submit]")
    page.wait_for_url(re.compile(r"/sweeps/\d+/$"))


def trial_rows(page) -> list[dict]:
    """The ranking table as the user sees it."""
    return page.evaluate("""() => [...document.querySelectorAll('#trials tbody tr')].map(row => ({
        rank: row.cells[0].textContent, state: row.dataset.state, value: row.cells[3].textContent,
        params: row.cells[4].textContent, href: (row.querySelector('a') || {}).href || null }))""")


def shown_params(row: dict) -> tuple[float, int]:
    """(train.lr, cube.steps) from a row's "train.lr=0.001000, cube.steps=2"."""
    params = dict(pair.split("=") for pair in row["params"].split(", "))
    assert set(params) == {"train.lr", "cube.steps"}, row
    return float(params["train.lr"]), int(params["cube.steps"])


def watch_ranking_fill(page) -> list[int]:
    """Completed-trial counts, each time the table changes, until all trials are complete."""
    seen: list[int] = []
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = trial_rows(page)
        assert not any(row["state"] in ("fail", "pruned") for row in rows), rows
        complete = sum(row["state"] == "complete" for row in rows)
        if not seen or seen[-1] != complete:
            seen.append(complete)
        if complete == TRIALS and page.inner_text("#sweep-status") == "finished":
            return seen
        time.sleep(0.3)
    raise TimeoutError(f"the sweep did not finish; completed counts seen {seen}, rows {trial_rows(page)}")


def cube_colours(page) -> list[float]:
    return page.evaluate("document.getElementById('cube-plot').data[0].marker.color.slice()")


def test_a_sweep_from_the_form_to_the_best_trials_cube_view(page, platform_user, celery_worker, daphne_server,
                                                            tmp_path, tiny_bert):
    started = time.monotonic()
    sign_in(page, platform_user)
    upload_dataset(page, tmp_path, "story support chats")
    start_sweep(page, "story support chats", tiny_bert)
    sweep_id = int(re.search(r"/sweeps/(\d+)/$", page.url).group(1))

    # The ranking table fills live: the page polls, and no reload happens while trials finish.
    page.evaluate("window.storyMarker = 'same page'")
    page.wait_for_function("window.sweepState && window.sweepState.polls >= 1")
    assert len(trial_rows(page)) == 2  # the parallelism limit: two trials queued at first
    seen = watch_ranking_fill(page)
    assert seen[0] < TRIALS and seen[-1] == TRIALS and seen == sorted(seen), seen
    assert len(seen) >= 3, f"the table only showed completed counts {seen}: it did not fill while the page was open"
    assert page.evaluate("window.storyMarker") == "same page"
    assert page.evaluate("window.sweepState.polls") >= 3

    rows = trial_rows(page)
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4"]
    values = [float(row["value"]) for row in rows]
    assert values == sorted(values, reverse=True)  # maximize: best first
    assert sorted(shown_params(row) for row in rows) == [(0.001, 2), (0.001, 3), (0.01, 2), (0.01, 3)]  # the grid
    assert page.inner_text("#sweep-counts") == "4 trials: 4 complete, 0 running, 0 pruned, 0 failed"
    status, sweep = api_call(daphne_server, f"/api/v1/sweeps/{sweep_id}/", platform_user.token)
    assert status == 200 and sweep["status"] == "finished"
    best = sweep["best"]
    assert abs(values[0] - best["value"]) <= 1e-3 * abs(best["value"])  # shown to 4 significant digits
    best_steps = shown_params(rows[0])[1]
    assert best_steps == best["params"]["cube.steps"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sweep_story.png"), full_page=True)

    # The best trial's link leads to its run, which came out of this sweep with its params.
    page.click("#trials tbody tr:first-child a")
    page.wait_for_url(re.compile(rf"/runs/{best['run']}/$"))
    page.wait_for_function("document.getElementById('status').textContent === 'succeeded'")
    status, run = api_call(daphne_server, f"/api/v1/runs/{best['run']}/", platform_user.token)
    assert f"sweep:{sweep_id}" in run["tags"] and run["config"]["cube"]["steps"] == best_steps

    # Its cube view: every cell of the 4×4×2 lattice (32 cells hold the teacher's 32-D vectors), and each propagation step recolours it.
    page.click("#cube-view-link")
    page.wait_for_function("document.getElementById('cube-plot').data !== undefined", timeout=120_000)
    assert "Validation example 0" in page.inner_text("#cube-status")
    assert page.evaluate("document.getElementById('step-slider').max") == str(best_steps)
    shown = {best_steps: cube_colours(page)}  # the page opens on the last step
    assert len(shown[best_steps]) == 32
    for step in reversed(range(best_steps)):
        page.eval_on_selector("#step-slider", "(s, v) => { s.value = String(v); s.dispatchEvent(new Event('input')); }",
                              step)
        assert page.inner_text("#step-label") == str(step)
        shown[step] = cube_colours(page)
        assert shown[step] != shown[step + 1], f"step {step} drew the same colours as step {step + 1}"
    assert len({tuple(colours) for colours in shown.values()}) == best_steps + 1
    assert page.evaluate("document.getElementById('cosine-plot').data[0].y.length") == best_steps + 1
    page.screenshot(path=str(ARTIFACTS / "sweep_story_cube.png"), full_page=True)
    print(f"\nsweep story: {TRIALS} trials, completed counts seen {seen}, {time.monotonic() - started:.1f} s")
