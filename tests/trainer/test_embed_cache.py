import logging

import pytest
import torch
from safetensors import safe_open

from trainer import teachers
from trainer.config import TeacherConfig
from trainer.embed_cache import CacheKey, EmbeddingCache, cached_embeddings, default_cache_dir

TEXTS = ["How do I boil an egg?", "Где вокзал?", "猫在哪里？", "Coffee ☕ or tea 🍵?"]
SHA = "ab" * 32


@pytest.fixture
def bert(tiny_teacher_dirs):
    return TeacherConfig(name="bert", path=tiny_teacher_dirs["bert"], device="cpu")


@pytest.fixture
def encode_calls(monkeypatch):
    """Counts teacher encodes; the real teacher still runs."""
    calls = []
    real = teachers.get_teacher

    def counting(cfg):
        teacher = real(cfg)
        encode = teacher.encode

        def encode_counted(texts, progress=False):
            calls.append(len(texts))
            return encode(texts, progress)

        teacher.encode = encode_counted
        return teacher

    monkeypatch.setattr(teachers, "get_teacher", counting)
    return calls


def forbid_teachers(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the teacher must not be touched on a cache hit")

    monkeypatch.setattr(teachers, "get_teacher", refuse)
    monkeypatch.setattr(teachers, "load_model", refuse)
    monkeypatch.setattr(teachers.Teacher, "__init__", refuse)


def test_it_reuses_stored_embeddings_without_touching_the_teacher(bert, tmp_path, monkeypatch, encode_calls):
    first = cached_embeddings(bert, TEXTS, SHA, "question", cache_dir=tmp_path)
    assert encode_calls == [4]
    assert first.shape == (4, 32) and first.dtype == torch.float32
    teachers.clear_teacher_cache()
    forbid_teachers(monkeypatch)
    second = cached_embeddings(bert, TEXTS, SHA, "question", cache_dir=tmp_path)
    assert torch.equal(first, second)


def test_it_writes_the_key_rows_and_dim_into_the_file_metadata(bert, tmp_path):
    cached_embeddings(bert, TEXTS, SHA, "answer", cache_dir=tmp_path)
    files = list((tmp_path / "embeddings").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    with safe_open(str(files[0]), framework="pt") as handle:
        metadata = handle.metadata()
        assert handle.get_tensor("embeddings").shape == (4, 32)
    assert metadata["dataset_sha256"] == SHA
    assert metadata["side"] == "answer"
    assert metadata["pooling"] == "mean" and metadata["max_length"] == "128"
    assert metadata["normalize"] == "True" and metadata["dtype"] == "float32"
    assert metadata["teacher"] == teachers.teacher_identity(bert)
    assert (metadata["rows"], metadata["dim"]) == ("4", "32")


def test_it_keys_entries_by_every_setting_that_changes_the_vectors(bert):
    cache = EmbeddingCache("unused")
    base = CacheKey.for_teacher(bert, "tiny-bert@local:1", SHA, "question")
    variants = [
        CacheKey.for_teacher(bert, "tiny-bert@local:2", SHA, "question"),
        CacheKey.for_teacher(bert, "tiny-bert@local:1", "cd" * 32, "question"),
        CacheKey.for_teacher(bert, "tiny-bert@local:1", SHA, "answer"),
        *[
            CacheKey.for_teacher(bert.model_copy(update=change), "tiny-bert@local:1", SHA, "question")
            for change in ({"pooling": "cls"}, {"max_length": 64}, {"normalize": False}, {"dtype": "bfloat16"})
        ],
    ]
    paths = {cache.path(key) for key in [base, *variants]}
    assert len(paths) == 1 + len(variants)
    same_but_batching = CacheKey.for_teacher(bert.model_copy(update={"batch_size": 3, "weight": 2.0}), "tiny-bert@local:1", SHA, "question")
    assert cache.path(same_but_batching) == cache.path(base)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_rows", "wrong_key"])
def test_it_detects_a_damaged_entry_logs_it_and_rebuilds(bert, tmp_path, caplog, encode_calls, damage):
    good = cached_embeddings(bert, TEXTS, SHA, "question", cache_dir=tmp_path)
    cache = EmbeddingCache(tmp_path)
    key = CacheKey.for_teacher(bert, teachers.teacher_identity(bert), SHA, "question")
    path = cache.path(key)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 50)
    elif damage == "wrong_rows":
        cache.save(key, torch.zeros(3, 32))
    else:  # a file another key wrote, moved under this name
        other = CacheKey.for_teacher(bert, key.teacher, SHA, "answer")
        cache.save(other, good).replace(path)
    with caplog.at_level(logging.WARNING, logger="trainer.embed_cache"):
        rebuilt = cached_embeddings(bert, TEXTS, SHA, "question", cache_dir=tmp_path)
    assert encode_calls == [4, 4]
    assert "unusable" in caplog.text and path.name in caplog.text
    torch.testing.assert_close(rebuilt, good)
    assert cache.load(key, rows=4) is not None


def test_it_never_leaves_a_partial_file_when_a_write_fails(tmp_path, monkeypatch):
    import safetensors.torch

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    cache = EmbeddingCache(tmp_path)
    key = CacheKey(SHA, "t@local:1", "mean", 128, True, "float32", "question")
    with pytest.raises(OSError, match="disk full"):
        cache.save(key, torch.ones(2, 3))
    assert list((tmp_path / "embeddings").iterdir()) == []


def test_it_finds_its_folder_from_the_environment_unless_told(monkeypatch, tmp_path):
    monkeypatch.setenv("CUBELAB_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert EmbeddingCache().root == tmp_path / "env"
    assert EmbeddingCache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("CUBELAB_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == (".cache", "cubelab")
