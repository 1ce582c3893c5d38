import json
import subprocess
import sys
from pathlib import Path

import yaml

from .helpers import make_vector_file

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


def write_config(path: Path, data: Path, **cube) -> Path:
    body = {
        "task": "dialogue", "seed": 0,
        "cube": {"lattice": [2, 2, 4], "state_dim": 8, "hidden_dim": 16, "steps": 2, **cube},
        "train": {"epochs": 2, "batch_size": 16},
        "data": {"path": str(data)}, "teachers": [],
    }
    path.write_text(yaml.safe_dump(body))
    return path


def test_validate_accepts_a_good_config(tmp_path):
    config = write_config(tmp_path / "ok.yaml", tmp_path / "pairs.safetensors")
    result = run_cli("validate", str(config), "--dim", "32")
    assert result.returncode == 0, result.stderr


def test_validate_rejects_a_typo_and_a_mismatched_lattice_with_exit_2(tmp_path):
    config = write_config(tmp_path / "bad.yaml", tmp_path / "x.npy", lattice=[8, 8, 8])
    result = run_cli("validate", str(config), "--dim", "768")
    assert result.returncode == 2
    assert "lattice 8×8×8 = 512 cells cannot hold 768-D vectors exactly: use 8×8×12" in result.stderr
    result = run_cli("validate", str(config), "--set", "cube.stpes=3")
    assert result.returncode == 2 and "unknown key `cube.stpes`; did you mean `steps`?" in result.stderr


def test_train_writes_config_metrics_summary_and_checkpoints_then_eval_reads_them(tmp_path):
    data = make_vector_file(tmp_path / "pairs.safetensors", rows=96)
    config = write_config(tmp_path / "run.yaml", data)
    out = tmp_path / "out"
    result = run_cli("train", str(config), "--out", str(out), "--set", "train.epochs=3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 3
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"
    assert {"step", "eval", "checkpoint"} <= {event["type"] for event in events}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    for key in ("train/loss", "lr", "perf/samples_per_s", "val/qa_cosine", "val/recall@1", "val/recall@5",
                "val/mrr", "baseline/identity/val/mrr", "baseline/linear/val/qa_cosine"):
        assert key in summary["metrics"], key
    evaluated = run_cli("eval", str(out), str(data), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert set(json.loads(evaluated.stdout)) >= {"val/qa_cosine", "baseline/linear/val/mrr"}


def test_training_leaves_django_out_of_the_process(tmp_path):
    data = make_vector_file(tmp_path / "pairs.safetensors", rows=48)
    config = write_config(tmp_path / "run.yaml", data)
    code = (
        "import sys, trainer\n"
        f"result = trainer.train(trainer.load_config({str(config)!r}), out_dir={str(tmp_path / 'o')!r})\n"
        "assert result.status == 'succeeded', result\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'channels', 'webapp', 'worker'))\n"
        "print(leaked)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_validate_reads_the_dimension_from_the_data_file_when_no_dim_is_given(tmp_path):
    import numpy as np

    vectors = make_vector_file(tmp_path / "pairs.safetensors", rows=8, dim=768)
    np.save(tmp_path / "pairs.npy", np.zeros((8, 2, 768), dtype=np.float32))
    np.savez(tmp_path / "pairs.npz", questions=np.zeros((8, 768), np.float32), answers=np.zeros((8, 768), np.float32))
    for data in (vectors, tmp_path / "pairs.npy", tmp_path / "pairs.npz"):
        config = write_config(tmp_path / "bad.yaml", data, lattice=[8, 8, 8])
        result = run_cli("validate", str(config))
        assert result.returncode == 2, (data.name, result.stdout)
        assert "lattice 8×8×8 = 512 cells cannot hold 768-D vectors exactly" in result.stderr
        fitting = run_cli("validate", str(write_config(tmp_path / "ok.yaml", data, lattice=[8, 8, 12])))
        assert fitting.returncode == 0 and "checked against 768-D inputs" in fitting.stdout, fitting.stderr


def test_validate_reads_the_dimension_from_the_first_teachers_config(tmp_path, tiny_teacher_dirs):
    corpus = tmp_path / "faq.jsonl"
    corpus.write_text('{"question": "a?", "answer": "b"}\n' * 8, encoding="utf-8")
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump({
        "task": "dialogue", "seed": 0, "cube": {"lattice": [2, 2, 5]}, "train": {"epochs": 1, "batch_size": 4},
        "data": {"path": str(corpus)}, "teachers": [{"name": "tiny", "path": tiny_teacher_dirs["bert"]}]}))
    result = run_cli("validate", str(config))  # tiny BERT is 32-D; 20 cells cannot hold it
    assert result.returncode == 2 and "20 cells cannot hold 32-D vectors" in result.stderr


METRICS = ("val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr")


def assert_cube_and_baselines_reported(summary: dict) -> None:
    for metric in METRICS:
        for prefix in ("", "baseline/identity/", "baseline/linear/"):
            assert isinstance(summary["metrics"].get(prefix + metric), float), prefix + metric


def test_the_worked_example_trains_on_the_demo_text_with_minilm_and_every_task_loss(tmp_path, minilm_available):
    """docs/training.md's worked example, as written, cut to a few steps."""
    import pytest

    if not minilm_available:
        pytest.skip("the MiniLM teacher package is not installed")
    out = tmp_path / "dialogue"
    result = run_cli("train", "examples/dialogue.yaml", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                     "--set", "train.max_steps=3", "--set", "train.eval_every=3", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    for term in ("cosine", "mse", "infonce", "triplet", "distill_relational"):
        assert f"train/loss/{term}" in summary["metrics"], term
    assert_cube_and_baselines_reported(summary)


def test_the_cli_trains_with_two_tiny_teachers_of_different_sizes(tmp_path, tiny_teacher_dirs):
    from tests.conftest import dialogue_jsonl

    data = tmp_path / "faq.jsonl"
    data.write_bytes(dialogue_jsonl(40))
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({
        "task": "dialogue", "seed": 0, "data": {"path": str(data)},
        "cube": {"lattice": [2, 2, 8], "state_dim": 8, "hidden_dim": 16, "steps": 2},  # 32 cells: bert's 32-D
        "train": {"epochs": 2, "batch_size": 8},
        "teachers": [{"name": "bert", "path": tiny_teacher_dirs["bert"]},
                     {"name": "roberta", "path": tiny_teacher_dirs["roberta"]}],  # 48-D, reached by a head
        "loss": {"infonce": {"weight": 0.2}}, "distill": {"regression_weight": 1.0, "relational_weight": 0.5}}))
    out = tmp_path / "two"
    result = run_cli("train", str(config), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    for term in ("cosine", "infonce", "distill_regression", "distill_relational"):
        assert f"train/loss/{term}" in summary["metrics"], term
    assert_cube_and_baselines_reported(summary)
