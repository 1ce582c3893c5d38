import json

import pytest
import torch

from trainer import teachers
from trainer.config import ConfigError, parse_config
from trainer.text_pairs import embed_text_pairs, space_names

ROWS = [("How do I boil an egg?", "Nine minutes in boiling water."), ("Как дела?", "Хорошо! 😊"), ("你好吗？", "我很好。")]


def make_config(path, teachers_list, task="dialogue", *overrides):
    return parse_config(
        {
            "task": task,
            "seed": 0,
            "cube": {"lattice": [2, 2, 2], "projection": "learned"},
            "train": {"epochs": 1, "batch_size": 2},
            "data": {"path": str(path)},
            "teachers": teachers_list,
        },
        list(overrides),
    )


@pytest.fixture
def dialogue_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in ROWS), encoding="utf-8")
    return path


@pytest.fixture
def two_teachers(tiny_teacher_dirs):
    return [
        {"name": "bert", "path": tiny_teacher_dirs["bert"], "device": "cpu", "weight": 2.0},
        {"name": "llama", "path": tiny_teacher_dirs["llama"], "device": "cpu", "pooling": "last"},
    ]


def test_it_embeds_questions_and_answers_with_every_teacher(dialogue_file, two_teachers, tmp_path):
    pairs = embed_text_pairs(make_config(dialogue_file, two_teachers), cache_dir=tmp_path / "cache")
    assert pairs.dims() == {"bert": 32, "llama": 64}
    assert pairs.rows == 3
    assert (pairs.input_space, pairs.primary_space) == ("bert", "bert")
    assert pairs.texts == ROWS
    assert pairs.teacher_weights == {"bert": 2.0, "llama": 1.0}
    assert pairs.sha256 == __import__("hashlib").sha256(dialogue_file.read_bytes()).hexdigest()
    assert not torch.allclose(pairs.questions["bert"], pairs.answers["bert"])
    direct = teachers.get_teacher(teachers.TeacherConfig(**two_teachers[1])).encode([a for _, a in ROWS])
    torch.testing.assert_close(pairs.answers["llama"], direct, atol=1e-5, rtol=1e-4)


def test_it_reads_the_second_time_from_the_cache_without_a_teacher(dialogue_file, two_teachers, tmp_path, monkeypatch):
    config = make_config(dialogue_file, two_teachers)
    first = embed_text_pairs(config, cache_dir=tmp_path / "cache")

    def refuse(*args, **kwargs):
        raise AssertionError("no teacher may load on a cache hit")

    monkeypatch.setattr(teachers, "get_teacher", refuse)
    monkeypatch.setattr(teachers, "load_model", refuse)
    second = embed_text_pairs(config, cache_dir=tmp_path / "cache")
    for space in ("bert", "llama"):
        assert torch.equal(first.questions[space], second.questions[space])
        assert torch.equal(first.answers[space], second.answers[space])


def test_it_encodes_a_corpus_once_and_reuses_it_as_answers(tmp_path, tiny_teacher_dirs, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\nthe dog slept\n🍕 pizza time\n", encoding="utf-8")
    calls = []
    real = teachers.get_teacher
    monkeypatch.setattr(teachers, "get_teacher", lambda cfg: calls.append(cfg.name) or real(cfg))
    config = make_config(corpus, [{"name": "roberta", "path": tiny_teacher_dirs["roberta"], "device": "cpu"}], "autoencoder")
    pairs = embed_text_pairs(config, cache_dir=tmp_path / "cache")
    assert calls == ["roberta"]
    assert pairs.answers["roberta"] is pairs.questions["roberta"]
    assert pairs.texts[2] == ("🍕 pizza time", "🍕 pizza time")
    assert pairs.dims() == {"roberta": 48}


def test_it_makes_space_names_unique_and_follows_eval_teacher(dialogue_file, tiny_teacher_dirs, tmp_path):
    assert space_names(["minilm", "x", "minilm", "minilm"]) == ["minilm", "x", "minilm#2", "minilm#3"]
    same = [
        {"name": "tiny", "path": tiny_teacher_dirs["bert"], "device": "cpu"},
        {"name": "tiny", "path": tiny_teacher_dirs["roberta"], "device": "cpu"},
    ]
    pairs = embed_text_pairs(make_config(dialogue_file, same, "dialogue", "distill.eval_teacher=tiny#2"), cache_dir=tmp_path)
    assert pairs.dims() == {"tiny": 32, "tiny#2": 48}
    assert (pairs.input_space, pairs.primary_space) == ("tiny", "tiny#2")


def test_it_refuses_text_data_without_a_teacher_or_with_an_unknown_eval_teacher(dialogue_file, two_teachers):
    with pytest.raises(ConfigError, match=r"text data need at least one teacher: add `teachers: \[\{name: minilm\}\]`"):
        embed_text_pairs(make_config(dialogue_file, []))
    with pytest.raises(ConfigError, match="no teacher is named `gpt`; the teachers are `bert`, `llama`"):
        embed_text_pairs(make_config(dialogue_file, two_teachers, "dialogue", "distill.eval_teacher=gpt"))
