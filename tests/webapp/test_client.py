"""The command-line client (``python -m webapp.client``) against Django's live test server
(HTTP only: following falls back from the websocket to polling) and, in one slow test,
against the real platform: upload, submit, follow over the websocket, final metrics."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import pytest
from rest_framework.authtoken.models import Token

from tests.conftest import ROOT, dialogue_jsonl
from webapp import client
from webapp.runs.models import Run

CONFIG = "task: dialogue\nseed: 0\ncube: {lattice: [8, 8, 6], steps: 2}\ntrain: {epochs: 1, batch_size: 8}\n" \
         "teachers: [{name: minilm}]\n"
SUMMARY = {"val/mrr": 0.61, "baseline/identity/val/mrr": 0.2, "baseline/linear/val/mrr": 0.5, "val/recall@1": 0.4}


def run_client(*argv, env_url="", token=""):
    out, err = io.StringIO(), io.StringIO()
    args = (["--url", env_url] if env_url else []) + (["--token", token] if token else []) + list(argv)
    code = client.main(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def server(live_server, alice, monkeypatch, isolated_storage):
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
    return {"url": live_server.url, "token": Token.objects.create(user=alice).key}


@pytest.fixture
def files(tmp_path):
    data, config = tmp_path / "faq.jsonl", tmp_path / "small.yaml"
    data.write_bytes(dialogue_jsonl(12))
    config.write_text(CONFIG)
    return {"data": data, "config": config}


def test_it_needs_a_url_and_a_token(monkeypatch):
    monkeypatch.delenv("CUBELAB_URL", raising=False)
    monkeypatch.delenv("CUBELAB_TOKEN", raising=False)
    code, out, err = run_client("runs", "show", "1")
    assert code == 2 and "CUBELAB_URL" in err
    code, out, err = run_client("runs", "show", "1", env_url="http://127.0.0.1:9")
    assert code == 2 and "CUBELAB_TOKEN" in err


def test_it_rejects_bad_arguments():
    with pytest.raises(SystemExit) as exit_info:
        client.main(["runs", "submit", "--config", "x.yaml"], out=io.StringIO(), err=io.StringIO())
    assert exit_info.value.code == 2  # argparse: --dataset is required


def test_it_says_when_the_server_cannot_be_reached(files):
    code, out, err = run_client("runs", "show", "1", env_url="http://127.0.0.1:9", token="k")
    assert code == 2 and "cannot reach http://127.0.0.1:9" in err


def test_it_reads_url_and_token_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("CUBELAB_URL", server["url"])
    monkeypatch.setenv("CUBELAB_TOKEN", server["token"])
    code, out, err = run_client("datasets", "list")
    assert code == 0 and err == ""
    monkeypatch.setenv("CUBELAB_TOKEN", "not-a-token")
    code, out, err = run_client("datasets", "list")
    assert code == 2 and "HTTP 401" in err


def test_it_uploads_a_dataset_and_reports_bad_lines(server, files, tmp_path):
    code, out, err = run_client("datasets", "upload", str(files["data"]), "--name", "faq", "--kind", "dialogue",
                                env_url=server["url"], token=server["token"])
    assert code == 0 and "'faq': 12 rows (dialogue)" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"question": "q", "answer": "a"}\n{"question": \n')
    code, out, err = run_client("datasets", "upload", str(bad), env_url=server["url"], token=server["token"])
    assert code == 2 and "HTTP 400" in err and "line 2" in err
    code, out, err = run_client("datasets", "upload", str(tmp_path / "missing.jsonl"),
                                env_url=server["url"], token=server["token"])
    assert code == 2 and "no such file" in err


def test_it_submits_shows_and_cancels_a_run(server, files, make_dataset, alice):
    dataset = make_dataset(alice)
    code, out, err = run_client("runs", "submit", "--dataset", str(dataset.pk), "--config", str(files["config"]),
                                "--tag", "cli", env_url=server["url"], token=server["token"])
    run = Run.objects.get()
    assert code == 0 and f"run #{run.pk} queued on the cpu queue" in out and run.tag_names == ["cli"]
    code, out, err = run_client("runs", "show", str(run.pk), env_url=server["url"], token=server["token"])
    assert code == 0 and "queued on the cpu queue" in out and "tags: cli" in out
    code, out, err = run_client("runs", "cancel", str(run.pk), env_url=server["url"], token=server["token"])
    assert code == 0 and out.strip() == f"run #{run.pk}: cancelled"
    code, out, err = run_client("runs", "cancel", str(run.pk), env_url=server["url"], token=server["token"])
    assert code == 2 and "nothing to cancel" in err


def test_it_shows_config_errors_with_their_path(server, files, make_dataset, alice):
    files["config"].write_text(CONFIG.replace("steps: 2", "stpes: 2"))
    code, out, err = run_client("runs", "submit", "--dataset", str(make_dataset(alice).pk), "--config",
                                str(files["config"]), env_url=server["url"], token=server["token"])
    assert code == 2 and "cube.stpes" in err and Run.objects.count() == 0


def _finish_soon(status, summary, delay=1.0):
    def finish():
        run = None
        for _ in range(50):
            run = Run.objects.first()
            if run is not None:
                break
            threading.Event().wait(0.1)
        Run.objects.filter(pk=run.pk).update(status=status, last_step=4, total_steps=4, summary=summary,
                                             error="" if status == "succeeded" else "loss is NaN")

    timer = threading.Timer(delay, finish)
    timer.start()
    return timer


def test_the_one_liner_falls_back_to_polling_and_prints_the_metrics_table(server, files, monkeypatch):
    monkeypatch.setattr(client, "POLL_SECONDS", 0.2)
    timer = _finish_soon("succeeded", SUMMARY)
    code, out, err = run_client("run", "--data", str(files["data"]), "--config", str(files["config"]), "--follow",
                                env_url=server["url"], token=server["token"])
    timer.join()
    assert code == 0, err
    assert "live updates unavailable" in err  # the test server speaks no websocket
    assert "succeeded" in out
    table = out[out.index("metric"):].splitlines()
    assert table[0].split() == ["metric", "cube", "identity", "linear"]
    assert table[1].split() == ["recall@1", "0.4000", "-", "-"] and table[2].split() == ["mrr", "0.6100", "0.2000",
                                                                                          "0.5000"]


def test_it_exits_non_zero_when_the_run_fails(server, files, make_dataset, alice, monkeypatch):
    monkeypatch.setattr(client, "POLL_SECONDS", 0.2)
    dataset = make_dataset(alice)
    timer = _finish_soon("failed", {})
    code, out, err = run_client("runs", "submit", "--dataset", str(dataset.pk), "--config", str(files["config"]),
                                "--follow", env_url=server["url"], token=server["token"])
    timer.join()
    assert code == 1 and "failed" in out and "error: loss is NaN" in out


def test_a_follow_of_someone_elses_run_is_a_404(server, bob, make_dataset):
    run = Run.objects.create(name="b", owner=bob, dataset=make_dataset(bob), config={})
    code, out, err = run_client("runs", "follow", str(run.pk), env_url=server["url"], token=server["token"])
    assert code == 2 and "HTTP 404" in err


def test_the_progress_bar_follows_steps_and_the_loss():
    bar_out = io.StringIO()
    messages = [
        {"type": "status", "status": "running", "last_step": 0, "total_steps": 4},
        {"type": "step", "step": 2, "metrics": {"train/loss": 0.5}},
        {"type": "eval", "step": 2, "metrics": {"val/mrr": 0.3}},
        {"type": "step", "step": 4, "metrics": {"train/loss": 0.25}},
        {"type": "status", "status": "succeeded", "last_step": 4, "total_steps": 4},
    ]

    class FakeApi:
        def get(self, path):
            return {"id": 1, "status": "succeeded"}

    run = client.follow_run(FakeApi(), 1, out=bar_out, sources=[lambda api, run_id: iter(messages)])
    text = bar_out.getvalue()
    assert run["status"] == "succeeded"
    assert "4/4" in text and "loss=0.2500" in text and "eval @ step 2: mrr=0.3000" in text


def test_it_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "webapp.client", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "datasets" in result.stdout and "run" in result.stdout


@pytest.mark.slow
def test_the_client_drives_a_real_run_to_its_final_metrics(daphne_server, celery_worker, platform_user, tmp_path):
    from tests.trainer.tiny_models import build_tiny_teachers

    tiny_bert = build_tiny_teachers(tmp_path / "teachers")["bert"]  # 32-D, offline
    data, config = tmp_path / "faq.jsonl", tmp_path / "tiny.yaml"
    data.write_bytes(dialogue_jsonl(24))
    config.write_text("task: dialogue\nseed: 0\ncube: {lattice: [2, 2, 8], steps: 2, hidden_dim: 16}\n"
                      "train: {epochs: 2, batch_size: 8, device: cpu}\n"
                      f"teachers: [{{name: tiny-bert, path: '{tiny_bert}', device: cpu}}]\n")
    env = {"CUBELAB_URL": daphne_server, "CUBELAB_TOKEN": platform_user.token, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "webapp.client", "run", "--data", str(data), "--config",
                             str(config), "--follow"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "live updates unavailable" not in result.stderr  # followed over the websocket
    assert "succeeded" in result.stdout and "step" in result.stderr and "loss=" in result.stderr
    mrr = next(line for line in result.stdout.splitlines() if line.startswith("mrr"))
    assert len(mrr.split()) == 4 and "-" not in mrr.split()[1:]  # cube, identity and linear values
