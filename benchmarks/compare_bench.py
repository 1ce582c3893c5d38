"""Benchmark of the comparison: generated data in a throwaway SQLite database.

    python benchmarks/compare_bench.py                      # 100 runs × 5 keys × 50,000 steps, 10,000-run table
    python benchmarks/compare_bench.py --steps 5000 --table 1000 --no-browser   # a quick look
    python benchmarks/compare_bench.py --db /tmp/bench.sqlite3 --keep            # reuse the data next time

Measures (targets from issue 5): the comparison API's time and response size (≤ 500 ms,
≤ 4 MB), a zoomed request, the run table's query + sort + page (≤ 200 ms) and the comparison
page's time to interactive in headless Chromium (≤ 2 s: navigation start → the charts in
view, the config diff and the summary drawn; charts below the fold draw as they scroll in,
and the time until all of them are drawn is reported too). Prints one JSON document with every figure. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ["train/loss", "val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr"]
TEACHERS = ["minilm", "tiny-bert", "mpnet", "e5-small"]
TABLE_QUERY = "cube.steps >= 8 and teacher in (minilm, tiny-bert) and val/mrr between 0.2 and 0.6"
USERNAME, PASSWORD = "bench", "bench-password-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="runs with full curves")
    parser.add_argument("--steps", type=int, default=50_000, help="points per run and key")
    parser.add_argument("--table", type=int, default=10_000, help="runs in the table (including --runs)")
    parser.add_argument("--max-points", type=int, default=100_000, help="the budget the page asks for at 500 series")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep and reuse the database file")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium time-to-interactive")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cubelab-bench-"))
    db = Path(args.db) if args.db else workdir / "bench.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{db}", "CUBELAB_VAR_DIR": str(workdir / "var"), "DEBUG": "1",
           "DJANGO_SETTINGS_MODULE": "webapp.settings", "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    report: dict = {"runs": args.runs, "keys": len(KEYS), "steps": args.steps, "table_runs": args.table,
                    "points": args.runs * len(KEYS) * args.steps}
    fresh = not (args.keep and db.exists() and db.stat().st_size > 0)
    if fresh:
        report["generate"] = generate(args)
    else:
        report["reused_db"] = refresh(args)
    report |= measure_api(args)
    if not args.no_browser:
        report["page"] = measure_page(args, env)
    print(json.dumps(report, indent=2))
    if not args.keep and not args.db:
        for path in workdir.glob("bench.sqlite3*"):
            path.unlink()


# --- data ---------------------------------------------------------------------------------

def generate(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection

    from webapp.compare.series import build_run_caches
    from webapp.datasets.actions import create_dataset
    from webapp.runs.models import Run, Tag

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    rows = "".join(json.dumps({"question": f"q{i}?", "answer": f"a{i}."}) + "\n" for i in range(12)).encode()
    dataset = create_dataset(user, "bench", "dialogue", SimpleUploadedFile("bench.jsonl", rows))
    rng = random.Random(0)
    team = {"team_id": dataset.team_id} if hasattr(dataset, "team_id") else {}
    statuses = ["succeeded"] * 6 + ["failed", "cancelled", "running", "queued"]
    runs = []
    for index in range(args.table):
        curves = index < args.runs
        config = {"task": "dialogue", "seed": rng.randint(1, 5), "name": None,
                  "cube": {"lattice": [8, 8, 6], "steps": rng.choice([2, 4, 8, 16, 32]), "state_dim": 16},
                  "train": {"lr": rng.choice([1e-3, 3e-4, 1e-4]), "epochs": 10, "batch_size": rng.choice([32, 64])},
                  "teachers": [{"name": name} for name in rng.sample(TEACHERS, rng.randint(1, 2))]}
        summary = {key: rng.random() for key in KEYS[1:]} | {"train/loss": rng.random() * 2}
        summary |= {f"baseline/{kind}/{key}": rng.random() * 0.5 for kind in ("identity", "linear") for key in KEYS[1:]}
        runs.append(Run(name=f"bench {index}", owner=user, dataset=dataset, config=config, summary=summary,
                        status="succeeded" if curves else rng.choice(statuses),
                        last_step=args.steps - 1 if curves else 0, **team))
    Run.objects.bulk_create(runs, batch_size=2000)
    ids = list(Run.objects.order_by("id").values_list("id", flat=True))
    best = Tag.objects.create(name="best")
    Run.tags.through.objects.bulk_create([Run.tags.through(run_id=pk, tag_id=best.pk) for pk in ids[::7]])
    table_s = time.perf_counter() - started

    # The points are generated inside SQLite (a recursive CTE per run and key): ~10× faster
    # than binding 25 million Python tuples. A decaying curve, noise, and a few spikes.
    started = time.perf_counter()
    raw = connection.connection
    raw.execute("PRAGMA journal_mode=OFF")
    raw.execute("PRAGMA synchronous=OFF")
    raw.execute("PRAGMA cache_size=-262144")  # 256 MB: the (run, key, step) index stays in memory
    for run_id in ids[: args.runs]:
        for k, key in enumerate(KEYS):
            raw.execute(
                "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < ?) "
                "INSERT INTO runs_metricpoint (run_id, key, step, value, time) "
                "SELECT ?, ?, x, exp(-x / ?) + (random() % 1000) / 50000.0 "
                "+ CASE WHEN abs(random()) % 20000 = 0 THEN 3.0 ELSE 0.0 END, 1.7e9 + x * 0.05 FROM s",
                (args.steps - 1, run_id, key, 5000.0 + 100 * k),
            )
        raw.commit()
    raw.execute("PRAGMA journal_mode=WAL")
    points_s = time.perf_counter() - started

    started = time.perf_counter()
    for run in Run.objects.filter(pk__in=ids[: args.runs]):
        build_run_caches(run)  # what finishing a run does (webapp/compare/signals.py)
    cache_s = time.perf_counter() - started
    return {"table_s": round(table_s, 1), "points_s": round(points_s, 1), "caches_s": round(cache_s, 1),
            "cache_per_run_ms": round(1000 * cache_s / max(args.runs, 1), 1)}


def refresh(args) -> dict:
    """A kept database: apply new migrations and rebuild caches built by older code."""
    from django.core.management import call_command

    from webapp.compare.models import SeriesCache
    from webapp.compare.series import build_run_caches, is_current
    from webapp.runs.models import Run

    call_command("migrate", interactive=False, verbosity=0)
    started = time.perf_counter()
    ids = list(Run.objects.order_by("id").values_list("id", flat=True)[: args.runs])
    rebuilt = 0
    for run in Run.objects.filter(pk__in=ids):
        if not all(is_current(cache, run) for cache in SeriesCache.objects.filter(run=run).defer("coarse", "levels")):
            build_run_caches(run)
            rebuilt += 1
    return {"caches_rebuilt_for_runs": rebuilt, "rebuild_s": round(time.perf_counter() - started, 1)}


# --- measurements -------------------------------------------------------------------------

def timed(client, url: str, repeat: int):
    client.get(url)  # warm: connection, imports
    times, response = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        content = response.content if not response.streaming else b"".join(response.streaming_content)
        times.append(1000 * (time.perf_counter() - started))
    assert response.status_code == 200, (url, response.status_code, content[:500])
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "bytes": len(content)}, content


def measure_api(args) -> dict:
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.test import Client

    from webapp.runs.models import Run

    client = Client()
    client.force_login(get_user_model().objects.get(username=USERNAME))
    ids = list(Run.objects.order_by("id").values_list("id", flat=True)[: args.runs])
    base = {"runs": ",".join(map(str, ids)), "keys": ",".join(KEYS)}
    out = {}
    page_budget, body = timed(client, "/api/v1/compare/?" + urlencode(base | {"max_points": args.max_points}),
                              args.repeat)
    payload = json.loads(body)
    out["compare_api_page_budget"] = page_budget | {"max_points": args.max_points, "points": payload["points"]}
    default, body = timed(client, "/api/v1/compare/?" + urlencode(base), args.repeat)
    out["compare_api_default_budget"] = default | {"points": json.loads(body)["points"]}
    third = args.steps // 3
    zoom, body = timed(client, "/api/v1/compare/?" + urlencode(
        base | {"max_points": args.max_points, "x_min": third, "x_max": third + 1000}), args.repeat)
    out["compare_api_zoom_1000_steps_all_keys"] = zoom | {"points": json.loads(body)["points"]}
    # What the page asks when a chart is zoomed: that chart's key only (raw points if ≤ 200,000).
    zoom, body = timed(client, "/api/v1/compare/?" + urlencode(
        base | {"keys": KEYS[0], "max_points": 40_000, "x_min": third, "x_max": third + 1000}), args.repeat)
    payload = json.loads(body)
    out["compare_api_zoom_1000_steps_one_key"] = zoom | {
        "points": payload["points"], "full_resolution": not any(
            series["downsampled"] for per_key in payload["series"].values() for series in per_key.values())}
    grouped, body = timed(client, "/api/v1/compare/?" + urlencode(
        base | {"max_points": args.max_points, "group_by": "seed"}), args.repeat)
    out["compare_api_group_by_seed"] = grouped | {"points": json.loads(body)["points"]}
    table = {}
    for name, params in [("first_page", {}), ("query_sorted_page_3", {"q": TABLE_QUERY, "sort": "-val/mrr",
                                                                       "page": 3, "columns": "cube.steps,val/mrr"}),
                         ("sorted_by_config_last_page", {"sort": "cube.steps", "page": args.table // 50})]:
        figures, body = timed(client, "/api/v1/compare/runs/?" + urlencode(params), args.repeat)
        table[name] = figures | {"count": json.loads(body)["count"]}
    out["runs_table_api"] = table
    figures, _ = timed(client, "/api/v1/compare/table.csv?" + urlencode(base), args.repeat)
    out["table_csv"] = figures
    out["table_query"] = TABLE_QUERY
    return out


def measure_page(args, env) -> dict:
    from playwright.sync_api import sync_playwright

    from webapp.redis_server import free_port, port_is_open
    from webapp.runs.models import Run

    ids = list(Run.objects.order_by("id").values_list("id", flat=True)[: args.runs])
    port = free_port()
    log = open(Path(env["CUBELAB_VAR_DIR"]).parent / "daphne.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "webapp.asgi:application"], cwd=ROOT, env=os.environ | env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_is_open(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("daphne did not start")
            time.sleep(0.1)
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(base_url=f"http://127.0.0.1:{port}", viewport={"width": 1280, "height": 1000})
            page.goto("/accounts/login/")
            page.fill("#id_username", USERNAME)
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            url = f"/compare/?runs={','.join(map(str, ids))}&keys={','.join(KEYS)}"
            timings, phases, all_drawn, visible = [], [], [], []
            for _ in range(args.repeat):
                page.goto(url)
                page.wait_for_function("window.compareState && window.compareState.ready", timeout=120_000)
                timings.append(page.evaluate("window.compareState.readyAt"))
                phases.append(page.evaluate("window.compareState.timings"))
                visible.append(page.evaluate("document.querySelectorAll('#charts .chart[data-drawn]').length"))
                # Then scroll to the last chart: every chart drawn, from navigation start.
                page.locator("#charts .chart").last.scroll_into_view_if_needed()
                page.wait_for_function("document.querySelectorAll('#charts .chart[data-drawn]').length === "
                                       f"{len(KEYS)}", timeout=120_000)
                all_drawn.append(page.evaluate("performance.now()"))
            page.locator("#parcoords").scroll_into_view_if_needed()
            page.wait_for_function("window.compareState.parcoordsMs !== undefined", timeout=120_000)
            parcoords_ms = page.evaluate("window.compareState.parcoordsMs")
            chart_ms = page.evaluate("window.compareState.chartMs")
            traces = page.evaluate("Array.from(document.querySelectorAll('#charts .chart')).map(d => d.data.length)")
            shot = ROOT / "test-artifacts" / "compare_bench.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot))
            table_url = f"/compare/?q={TABLE_QUERY}&sort=-val/mrr"
            table_times = []
            for _ in range(args.repeat):
                page.goto(table_url)
                page.wait_for_selector("#runs-body tr")
                table_times.append(page.evaluate("performance.now()"))
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    return {"time_to_interactive_ms_median": round(statistics.median(timings)),
            "charts_drawn_at_interactive": visible,
            "all_charts_drawn_after_scrolling_ms_median": round(statistics.median(all_drawn)),
            "time_to_interactive_ms_max": round(max(timings)), "traces_per_chart": traces,
            "phases_ms_median": {name: round(statistics.median(p[name] for p in phases))
                                 for name in ("startedAt", "fetchMs", "drawMs", "chartsMs", "tablesMs")},
            "parcoords_when_scrolled_into_view_ms": round(parcoords_ms),
            "last_load_per_chart_plot_ms": chart_ms,
            "table_page_rows_visible_ms_median": round(statistics.median(table_times))}


if __name__ == "__main__":
    main()
