"""The noise ledger (analysis.ledger) on a synthetic group of runs whose noise sources are known."""

import math

import pandas as pd
import pytest

from analysis.ledger import ledger, markdown


def _runs():
    rows = []
    for seed, (pre, rnd, flat) in enumerate([(0.40, 0.30, 0.50), (0.42, 0.31, 0.51), (0.41, 0.29, 0.49)]):
        rows.append(
            {
                "sweep": "loss_granularity",
                "preset": "tiny",
                "variant": "token",
                "seed": seed,
                "status": "completed",
                "probe/cifar10_knn/top1": pre,
                "probe_random/cifar10_knn/top1": rnd,
                "probe/cifar10_knn/top1/se": 0.005,
                "probe/cifar10_knn/top1/gap_se": 0.003,
                "probe/shapes_seg/miou": flat,
                "probe_random/shapes_seg/miou": flat - 0.001 * (-1) ** seed,
                "probe/shapes_seg/miou/refit_sd": 0.002,
                "probe/cifar10_attentive/top1": pre,
                "probe_random/cifar10_attentive/top1": rnd,
            }
        )
    return pd.DataFrame(rows)


def test_ledger_rows_state_each_noise_source_and_the_range():
    t = ledger(_runs()).set_index("metric")
    knn = t.loc["probe/cifar10_knn/top1"]
    assert knn["gap"] == pytest.approx(0.11)
    gaps = pd.Series([0.10, 0.11, 0.12])
    assert knn["gap_se"] == pytest.approx(gaps.std() / math.sqrt(3))
    assert knn["seed_sd"] == pytest.approx(pd.Series([0.40, 0.42, 0.41]).std())
    assert knn["eval_se"] == pytest.approx(0.005) and knn["eval_gap_se"] == pytest.approx(0.003)
    assert knn["pooled_se"] == pytest.approx(math.hypot(knn["gap_se"], 0.003))
    assert knn["z"] == pytest.approx(0.11 / knn["pooled_se"])
    assert knn["refit_sd"] == "fixed"  # k-NN: no fit
    assert knn["range"] == "yes"
    seg = t.loc["probe/shapes_seg/miou"]
    assert seg["range"] == "no" and "within noise" in seg["reason"]
    assert seg["refit_sd"] == pytest.approx(0.002)
    # an attentive head's fit is random: without refits its spread is unknown, never "fixed"
    assert math.isnan(t.loc["probe/cifar10_attentive/top1", "refit_sd"])
    text = markdown(ledger(_runs()))
    assert "| `probe/shapes_seg/miou` |" in text and "no: random-init gap" in text
