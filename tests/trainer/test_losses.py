"""Every loss term against numbers computed by another route (loops, closed forms)."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import LossTerm, parse_config
from trainer.losses import (
    CosineLoss,
    DistillRegressionLoss,
    DistillRelationalLoss,
    InfoNCELoss,
    LossInputs,
    MSELoss,
    TripletLoss,
    build_loss_stack,
    scheduled_weight,
)


def make_config(*overrides: str):
    base = {
        "task": "dialogue",
        "seed": 0,
        "cube": {"lattice": [2, 2, 2]},
        "train": {"epochs": 1, "batch_size": 8},
        "data": {"path": "pairs.jsonl"},
        "teachers": [{"name": "a"}, {"name": "b"}],
    }
    return parse_config(base, list(overrides))


def cos(u: list[float], v: list[float]) -> float:
    dot = sum(x * y for x, y in zip(u, v))
    return dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))


def unit(angle_deg: float) -> list[float]:
    return [math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))]


def test_it_computes_the_cosine_loss():
    prediction = torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, -3.0]])
    target = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    # cosines 0, 1, -1 -> losses 1, 0, 2
    assert CosineLoss().compute(prediction, target).item() == pytest.approx(1.0)


def test_it_computes_the_mse_loss():
    prediction = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    rows = zip(prediction.tolist(), target.tolist())
    expected = sum((p - t) ** 2 for row_p, row_t in rows for p, t in zip(row_p, row_t)) / 6
    assert MSELoss().compute(prediction, target).item() == pytest.approx(expected)


def infonce_by_loops(prediction: torch.Tensor, target: torch.Tensor, temperature: float, symmetric: bool) -> float:
    p, t = prediction.tolist(), target.tolist()
    batch = len(p)

    def direction(rows: list, cols: list) -> float:
        total = 0.0
        for i in range(batch):
            logits = [cos(rows[i], cols[j]) / temperature for j in range(batch)]
            total += math.log(sum(math.exp(x) for x in logits)) - logits[i]
        return total / batch

    forward = direction(p, t)
    return (forward + direction(t, p)) / 2 if symmetric else forward


@pytest.mark.parametrize("symmetric", [False, True])
def test_it_computes_infonce_like_a_loop_over_rows(symmetric):
    torch.manual_seed(0)
    prediction, target = torch.randn(5, 4), torch.randn(5, 4)
    loss = InfoNCELoss(temperature=0.5, symmetric=symmetric).compute(prediction, target)
    assert loss.item() == pytest.approx(infonce_by_loops(prediction, target, 0.5, symmetric), rel=1e-5)


def test_it_gives_infonce_near_zero_for_a_perfect_prediction_at_low_temperature():
    torch.manual_seed(1)
    target = torch.randn(16, 32)
    loss = InfoNCELoss(temperature=0.01).compute(target * 3.0, target)  # same directions, other norm
    assert loss.item() < 1e-6


def test_it_gives_infonce_near_log_batch_for_unrelated_predictions():
    torch.manual_seed(2)
    prediction, target = torch.randn(64, 512), torch.randn(64, 512)
    loss = InfoNCELoss(temperature=1.0).compute(prediction, target)
    assert loss.item() == pytest.approx(math.log(64), abs=0.05)


def test_it_does_not_treat_a_repeated_answer_as_an_infonce_negative():
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 share an answer
    prediction = target.clone()
    loss = InfoNCELoss(temperature=1.0).compute(prediction, target).item()
    # Row 0 picks among {t0, t2} (t1 masked), row 1 among {t1, t2}, row 2 among {t0, t1, t2}.
    row01 = math.log(math.e + 1.0) - 1.0
    row2 = math.log(2.0 + math.e) - 1.0
    assert loss == pytest.approx((2 * row01 + row2) / 3, rel=1e-5)


def triplet_by_loops(prediction: torch.Tensor, target: torch.Tensor, margin: float, k: int) -> float:
    p, t = prediction.tolist(), target.tolist()
    terms = []
    for i in range(len(p)):
        negatives = sorted((cos(p[i], t[j]) for j in range(len(t)) if j != i), reverse=True)[:k]
        positive = cos(p[i], t[i])
        terms += [max(0.0, margin - positive + negative) for negative in negatives]
    return sum(terms) / len(terms)


def test_it_computes_the_triplet_loss_like_a_loop_over_rows():
    torch.manual_seed(3)
    prediction, target = torch.randn(6, 3), torch.randn(6, 3)
    loss = TripletLoss(margin=0.5, negatives=2).compute(prediction, target)
    assert loss.item() == pytest.approx(triplet_by_loops(prediction, target, 0.5, 2), rel=1e-5)


def test_it_mines_the_hardest_negative_for_the_triplet_loss():
    # t1 is 0.9-similar to t0 and violates the 0.2 margin; t2 is orthogonal to both and does not.
    target = torch.tensor([[1.0, 0.0, 0.0], [0.9, math.sqrt(1 - 0.81), 0.0], [0.0, 0.0, 1.0]])
    prediction = target.clone()
    # k=1: rows 0 and 1 each pick the other (hinge 0.2 − 1 + 0.9 = 0.1), row 2 picks a 0-cos one.
    assert TripletLoss(margin=0.2, negatives=1).compute(prediction, target).item() == pytest.approx(0.2 / 3, rel=1e-4)
    # k=2 adds the easy negatives, which contribute 0: the same violations over twice the slots.
    assert TripletLoss(margin=0.2, negatives=2).compute(prediction, target).item() == pytest.approx(0.2 / 6, rel=1e-4)


def test_it_uses_every_other_row_when_the_batch_is_smaller_than_k_plus_one():
    target = torch.tensor([[1.0, 0.0, 0.0], [0.9, math.sqrt(1 - 0.81), 0.0], [0.0, 0.0, 1.0]])
    assert TripletLoss(margin=0.2, negatives=8).compute(target, target).item() == pytest.approx(0.2 / 6, rel=1e-4)
    single = torch.ones(1, 3, requires_grad=True)
    loss = TripletLoss(negatives=4).compute(single, single.detach())
    loss.backward()
    assert loss.item() == 0.0 and single.grad is not None


def test_it_does_not_mine_a_repeated_answer_as_a_triplet_negative():
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Without the mask rows 0 and 1 would each see a negative with cos 1 (hinge 0.2).
    assert TripletLoss(margin=0.2, negatives=1).compute(target, target).item() == pytest.approx(0.0)


def test_it_weights_the_regression_of_each_teacher_space():
    inputs = LossInputs(
        prediction=torch.zeros(2, 2),
        target=torch.zeros(2, 2),
        predictions={
            "b": torch.tensor([[1.0, 0.0], [1.0, 1.0]]),
            "c": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        },
        targets={"b": torch.tensor([[0.0, 1.0], [1.0, 1.0]]), "c": torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])},
        teacher_weights={"a": 0.5, "b": 0.25, "c": 0.25},  # `a` is the primary space: not covered
    )
    # b: mean(1 − 0, 1 − 1) = 0.5;  c: mean(1 − (−1), 1 − 1) = 1.0;  weights renormalised to 0.5 / 0.5
    assert DistillRegressionLoss(["b", "c"]).forward(inputs).item() == pytest.approx(0.75)
    # with MSE: b adds mean((1,−1,0,0)²) = 0.5, c adds mean((2,0,0,0,0,0)²) = 4/6
    with_mse = DistillRegressionLoss(["b", "c"], mse_weight=1.0).forward(inputs).item()
    assert with_mse == pytest.approx(0.5 * (0.5 + 0.5) + 0.5 * (1.0 + 4 / 6))


def relational_by_loops(prediction: torch.Tensor, target: torch.Tensor, temperature: float) -> float:
    p, t = prediction.tolist(), target.tolist()
    batch, total = len(p), 0.0
    for i in range(batch):
        others = [j for j in range(batch) if j != i]
        s = [math.exp(cos(p[i], p[j]) / temperature) for j in others]
        q = [math.exp(cos(t[i], t[j]) / temperature) for j in others]
        student = [x / sum(s) for x in s]
        teacher = [x / sum(q) for x in q]
        total += sum(pt * math.log(pt / ps) for pt, ps in zip(teacher, student))
    return total / batch


def test_it_computes_the_relational_kl_like_a_loop_over_rows():
    torch.manual_seed(4)
    prediction, target = torch.randn(5, 3), torch.randn(5, 6)  # the spaces may differ in dimension
    loss = DistillRelationalLoss(["s"], temperature=0.5).compute(prediction, target)
    assert loss.item() == pytest.approx(relational_by_loops(prediction, target, 0.5), rel=1e-4)


def test_it_gives_zero_relational_kl_when_the_similarity_matrices_agree():
    torch.manual_seed(5)
    target = torch.randn(6, 4)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4))
    same_geometry = 2.0 * target @ rotation  # rotated and scaled: every cosine is unchanged
    relational = DistillRelationalLoss(["s"], temperature=0.1)
    assert relational.compute(same_geometry, target).item() == pytest.approx(0.0, abs=1e-5)
    assert relational.compute(torch.randn(6, 4), target).item() > 0.01


def test_it_ramps_a_weight_linearly_over_its_warmup():
    term = LossTerm(weight=2.0, warmup_steps=100)
    assert [scheduled_weight(term, step) for step in (0, 50, 100, 500)] == [0.0, 1.0, 2.0, 2.0]
    assert scheduled_weight(LossTerm(weight=0.5), 0) == 0.5


def all_terms_inputs(step: int = 0) -> LossInputs:
    torch.manual_seed(6)
    predictions = {"a": torch.randn(6, 8, requires_grad=True), "b": torch.randn(6, 12, requires_grad=True)}
    targets = {"a": torch.randn(6, 8), "b": torch.randn(6, 12)}
    return LossInputs(predictions["a"], targets["a"], predictions, targets, {"a": 0.6, "b": 0.4}, step)


ALL_ON = (
    "loss.cosine.weight=1.0",
    "loss.mse.weight=0.5",
    "loss.mse.warmup_steps=10",
    "loss.infonce.weight=0.3",
    "loss.triplet.weight=0.2",
    "distill.regression_weight=0.7",
    "distill.relational_weight=0.4",
    "distill.relational_warmup_steps=20",
)


def test_it_reports_every_term_and_totals_the_weighted_sum():
    stack = build_loss_stack(make_config(*ALL_ON), spaces=["a", "b"], input_space="a", primary_space="a")
    inputs = all_terms_inputs(step=5)
    total, parts = stack(inputs)
    assert set(parts) == {"cosine", "mse", "infonce", "triplet", "distill_regression", "distill_relational"}
    # at step 5: mse is halfway through its 10-step warm-up, relational a quarter through its 20
    weights = {"cosine": 1.0, "mse": 0.25, "infonce": 0.3, "triplet": 0.2}
    weights |= {"distill_regression": 0.7, "distill_relational": 0.1}
    assert stack.weights(5) == pytest.approx(weights)
    assert total.item() == pytest.approx(sum(weights[name] * parts[name].item() for name in parts), rel=1e-6)
    assert parts["cosine"].item() == pytest.approx(CosineLoss().compute(inputs.prediction, inputs.target).item())
    infonce = {"weight": 0.3, "warmup_steps": 0, "temperature": 0.05, "symmetric": False}
    assert stack.get_config_dict()["infonce"] == infonce


def test_it_flows_gradients_through_every_term_to_the_predictions():
    stack = build_loss_stack(make_config(*ALL_ON), spaces=["a", "b"], input_space="a", primary_space="a")
    inputs = all_terms_inputs(step=100)
    _, parts = stack(inputs)
    for name, value in parts.items():
        grads = torch.autograd.grad(value, list(inputs.predictions.values()), allow_unused=True, retain_graph=True)
        reached = [g is not None and g.abs().sum().item() > 0 for g in grads]
        expected = {"distill_regression": [False, True], "distill_relational": [True, True]}.get(name, [True, False])
        assert reached == expected, name


def test_it_builds_only_the_terms_that_have_something_to_do():
    config = make_config("distill.relational_weight=0.5")  # defaults: cosine 1, regression 1
    single = build_loss_stack(config, spaces=["a"], input_space="a", primary_space="a")
    assert single.names == ["cosine", "distill_relational"]  # regression: no space but the primary
    multi = build_loss_stack(config, spaces=["a", "b", "c"], input_space="a", primary_space="a")
    assert multi.names == ["cosine", "distill_regression", "distill_relational"]
    assert multi.losses[1].spaces == ["b", "c"] and multi.losses[2].spaces == ["a", "b", "c"]
    # The primary space need not be the input space; then the input space is distilled too.
    other_primary = build_loss_stack(config, spaces=["a", "b"], input_space="a", primary_space="b")
    assert other_primary.losses[1].spaces == ["a"]
    assert build_loss_stack(config).names == ["cosine"]


def test_it_refuses_a_stack_with_nothing_to_minimise():
    config = make_config("loss.cosine.weight=0", "distill.regression_weight=1.0")
    with pytest.raises(ValueError, match="nothing to minimise"):
        build_loss_stack(config, spaces=["a"], input_space="a", primary_space="a")
    with pytest.raises(ValueError, match="not one of the spaces"):
        build_loss_stack(make_config(), spaces=["a"], input_space="a", primary_space="z")
