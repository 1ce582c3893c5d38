import pytest
import torch

from trainer.metrics import RidgeMap, baseline_metrics, fit_linear_baseline, retrieval_metrics


def test_perfect_predictions_score_one():
    targets = torch.eye(6)
    assert retrieval_metrics(targets.clone(), targets) == {"qa_cosine": 1.0, "recall@1": 1.0, "recall@5": 1.0, "mrr": 1.0}


def test_ranks_match_a_hand_computation():
    targets = torch.eye(3)
    predictions = torch.tensor([[1.0, 0, 0], [1.0, 0.5, 0], [0, 1.0, 0.1]])
    # row 0 ranks its target 1st; row 1 prefers target 0 → rank 2; row 2 prefers target 1 → rank 2
    metrics = retrieval_metrics(predictions, targets)
    assert metrics["recall@1"] == torch.tensor(1 / 3).item()
    assert abs(metrics["mrr"] - (1 + 0.5 + 0.5) / 3) < 1e-6


def test_a_constant_prediction_gets_no_credit_from_ties():
    targets = torch.eye(4)
    metrics = retrieval_metrics(torch.ones(4, 4), targets)
    assert metrics["recall@1"] == 0.0 and metrics["mrr"] == 0.25


def test_chunking_does_not_change_the_result():
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    chunked, whole = retrieval_metrics(p, t, chunk=7), retrieval_metrics(p, t, chunk=1024)
    assert chunked == pytest.approx(whole, abs=1e-6)


def test_ridge_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    w = torch.randn(5, 3, generator=g)
    fitted = RidgeMap.fit(x, x @ w + 2.0, alpha=1e-6)
    assert torch.allclose(fitted(x), x @ w + 2.0, atol=1e-3)
    assert torch.allclose(fit_linear_baseline(x, x @ w)(x), x @ w, atol=0.05)


def test_baselines_are_fitted_on_train_only():
    g = torch.Generator().manual_seed(1)
    x_train, x_val = torch.randn(100, 4, generator=g), torch.randn(20, 4, generator=g)
    # the validation targets follow a different map: a leak from validation would score near 1
    result = baseline_metrics(x_train, x_train, x_val, -x_val, val_identity=x_val)
    assert result["baseline/identity/val/qa_cosine"] < -0.99
    assert result["baseline/linear/val/qa_cosine"] < -0.9
