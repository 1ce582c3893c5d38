"""Teacher heads learn each teacher's space; teacher weights follow the config and agreement."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import parse_config
from trainer.distill import TeacherHeads, agreement_weights, head_agreements, initial_teacher_weights
from trainer.losses import LossInputs, build_loss_stack
from trainer.pairs import EmbeddedPairs

DIMS = {"a": 32, "b": 48, "c": 64}  # the cube reads `a`


def make_config(teachers: list[dict], *overrides: str):
    base = {
        "task": "dialogue",
        "seed": 0,
        "cube": {"lattice": [2, 2, 2]},
        "train": {"epochs": 1, "batch_size": 8},
        "data": {"path": "pairs.jsonl"},
        "teachers": teachers,
    }
    return parse_config(base, list(overrides))


def make_pairs(dims: dict[str, int], rows: int = 4, teacher_weights=None) -> EmbeddedPairs:
    spaces = {space: torch.randn(rows, dim) for space, dim in dims.items()}
    first = next(iter(dims))
    return EmbeddedPairs(spaces, spaces, first, first, "0" * 64, teacher_weights=teacher_weights)


def test_it_maps_the_cube_output_into_every_teacher_space():
    heads = TeacherHeads(DIMS, input_space="a", input_dim=32)
    out = torch.randn(5, 32)
    preds = heads(out)
    assert {space: tuple(p.shape) for space, p in preds.items()} == {"a": (5, 32), "b": (5, 48), "c": (5, 64)}
    assert preds["a"] is out  # the input space's head is the identity
    assert heads.head("a") is None and sorted(heads.head_keys) == ["b", "c"]


def test_it_starts_each_head_as_an_orthogonal_map_that_keeps_cosines():
    heads = TeacherHeads(DIMS, input_space="a", input_dim=32)
    out = torch.randn(6, 32)
    mapped = heads(out)["c"]  # 32 -> 64: orthonormal columns, zero bias
    assert torch.allclose(mapped @ mapped.T, out @ out.T, atol=1e-4)


def test_it_accepts_space_names_that_are_not_python_identifiers():
    heads = TeacherHeads({"org/model-v1.5": 8, "keys": 4, "x": 4}, input_space="x", input_dim=4)
    assert set(heads(torch.randn(2, 4))) == {"org/model-v1.5", "keys", "x"}


def test_it_refuses_an_input_dimension_that_does_not_match_the_input_space():
    with pytest.raises(ValueError, match="32-D"):
        TeacherHeads(DIMS, input_space="a", input_dim=16)


def test_it_learns_three_teacher_spaces_of_different_dimensions():
    torch.manual_seed(0)
    maps = {space: torch.randn(32, dim) / math.sqrt(32) for space, dim in DIMS.items() if space != "a"}
    x = torch.randn(512, 32)
    targets = {"a": x, **{space: x @ m for space, m in maps.items()}}  # fixed random linear teachers
    cube = torch.nn.Linear(32, 32)  # a stand-in for the cube: any trainable map into the input space
    heads = TeacherHeads(DIMS, input_space="a", input_dim=32)
    config = make_config([{"name": "a"}, {"name": "b"}, {"name": "c"}])  # cosine on `a`, regression on b, c
    stack = build_loss_stack(config, spaces=list(DIMS), input_space="a", primary_space="a")
    weights = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    optimizer = torch.optim.Adam([*cube.parameters(), *heads.parameters()], lr=1e-2)

    def regression(rows: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        preds = heads(cube(x[rows]))
        batch_targets = {space: t[rows] for space, t in targets.items()}
        inputs = LossInputs(preds["a"], batch_targets["a"], preds, batch_targets, weights, step)
        return stack(inputs)

    with torch.no_grad():
        _, before = regression(torch.arange(512), 0)
    head_weights = {space: heads.head(space).weight.detach().clone() for space in ("b", "c")}
    generator = torch.Generator().manual_seed(1)
    for step in range(300):
        rows = torch.randint(0, 512, (64,), generator=generator)
        total, _ = regression(rows, step)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    with torch.no_grad():
        _, after = regression(torch.arange(512), 300)
    assert before["distill_regression"].item() > 0.5  # orthogonal init: unrelated to the random teachers
    assert after["distill_regression"].item() < 0.05 * before["distill_regression"].item()
    assert all(not torch.equal(heads.head(s).weight, w) for s, w in head_weights.items())  # the heads moved


def test_it_initialises_heads_by_least_squares():
    torch.manual_seed(2)
    x = torch.randn(200, 32)
    targets = {"b": x @ torch.randn(32, 48) + 0.5, "c": x @ torch.randn(32, 64)}
    heads = TeacherHeads(DIMS, input_space="a", input_dim=32)
    fitted = heads.init_least_squares(x, targets, ridge=1e-6)
    assert fitted["b"] > 0.999 and fitted["c"] > 0.999
    assert head_agreements(heads(x), targets)["b"] == pytest.approx(fitted["b"], abs=1e-5)


def test_it_measures_head_agreement_as_mean_cosine():
    preds = {"a": torch.tensor([[1.0, 0.0], [0.0, 2.0]]), "b": torch.tensor([[1.0, 1.0]]), "extra": torch.ones(1, 2)}
    targets = {"a": torch.tensor([[1.0, 0.0], [0.0, -1.0]]), "b": torch.tensor([[1.0, 0.0]])}
    agreements = head_agreements(preds, targets)
    assert agreements == pytest.approx({"a": 0.0, "b": 1 / math.sqrt(2)})


def test_it_favours_the_teacher_with_higher_agreement():
    weights = agreement_weights({"a": 0.9, "b": 0.5, "c": 0.7})
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["a"] > weights["c"] > weights["b"] > 0
    assert weights["a"] / weights["b"] == pytest.approx(math.exp(0.4 / 0.25))  # exp(Δa / τ)


def test_it_keeps_agreement_weights_finite_for_negative_zero_and_missing_agreement():
    weights = agreement_weights({"a": -0.3, "b": 0.0, "c": float("nan"), "d": -5.0})
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(math.isfinite(w) and w > 0 for w in weights.values())
    assert weights["b"] > weights["a"] > weights["c"] == pytest.approx(weights["d"])  # NaN and -5 count as -1
    assert agreement_weights({"a": 0.0, "b": 0.0}) == pytest.approx({"a": 0.5, "b": 0.5})
    assert agreement_weights({}) == {}


def test_it_scales_agreement_weights_by_a_prior():
    weights = agreement_weights({"a": 0.5, "b": 0.5, "c": 0.9}, prior={"a": 3.0, "b": 1.0, "c": 0.0})
    assert weights == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.0})


def test_it_takes_initial_teacher_weights_from_the_config():
    config = make_config([{"name": "a", "weight": 3.0}, {"name": "b", "weight": 1.0}])
    assert initial_teacher_weights(config, make_pairs({"a": 4, "b": 6})) == pytest.approx({"a": 0.75, "b": 0.25})
    # Spaces named otherwise than the teachers: matched by position.
    assert initial_teacher_weights(config, make_pairs({"x": 4, "y": 6})) == pytest.approx({"x": 0.75, "y": 0.25})
    # The data loader's weights win when it filled them.
    pairs = make_pairs({"a": 4, "b": 6}, teacher_weights={"a": 1.0, "b": 1.0})
    assert initial_teacher_weights(config, pairs) == pytest.approx({"a": 0.5, "b": 0.5})


def test_it_weights_a_vector_space_alone_fully():
    config = make_config([])
    assert initial_teacher_weights(config, make_pairs({"vectors": 8})) == {"vectors": 1.0}


def test_it_refuses_all_zero_teacher_weights_while_distilling():
    teachers = [{"name": "a", "weight": 0.0}, {"name": "b", "weight": 0.0}]
    with pytest.raises(ValueError, match="every teacher weight is 0"):
        initial_teacher_weights(make_config(teachers), make_pairs({"a": 4, "b": 6}))
    off = make_config(teachers, "distill.regression_weight=0")
    assert initial_teacher_weights(off, make_pairs({"a": 4, "b": 6})) == pytest.approx({"a": 0.5, "b": 0.5})


def test_it_flows_gradients_from_the_distillation_terms_into_the_heads():
    heads = TeacherHeads(DIMS, input_space="a", input_dim=32)
    out = torch.randn(8, 32, requires_grad=True)
    preds = heads(out)
    targets = {space: torch.randn(8, dim) for space, dim in DIMS.items()}
    config = make_config([{"name": "a"}], "loss.cosine.weight=0", "distill.relational_weight=1.0")
    for term in ("distill_regression", "distill_relational"):
        stack = build_loss_stack(config, spaces=list(DIMS), input_space="a", primary_space="a")
        _, parts = stack(LossInputs(preds["a"], targets["a"], preds, targets, {}, step=0))
        params = [out, heads.head("b").weight, heads.head("c").weight]
        grads = torch.autograd.grad(parts[term], params, retain_graph=True)
        assert all(g.abs().sum().item() > 0 for g in grads), term
