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


def test_sensitivity_readme_from_its_files_is_reproducible(tmp_path):
    import json

    from analysis.sensitivity import candidates_table, readme, timing_table

    for seed, (pre, rnd) in enumerate([(0.30, 0.25), (0.32, 0.26), (0.31, 0.27)]):
        (tmp_path / f"seed{seed}.json").write_text(
            json.dumps(
                {
                    "probe/cam/miou": pre,
                    "probe_random/cam/miou": rnd,
                    "probe/cam/miou/gap_se": 0.001,
                    "probe/cam/time_s": 10.0,
                    "probe_random/cam/time_s": 8.0,
                    "probe/cam/iou/sky": 0.9,  # per-class: not a headline
                }
            )
        )
    c = candidates_table(sorted(tmp_path.glob("seed*.json")))
    assert list(c["seed"]) == [0, 1, 2] and set(c["metric"]) == {"miou"}
    c.to_csv(tmp_path / "dense_candidates.csv", index=False)
    timing_table({"default": tmp_path / "seed0.json"}).to_csv(tmp_path / "timing.csv", index=False)
    _runs().assign(code_version="abc1234").to_csv(tmp_path / "default.csv", index=False)
    text = readme(tmp_path)
    assert "+0.0500 ±" in text  # the candidate's mean gap over the 3 seeds
    assert "2 of 3 probe metrics have range (`cifar10_attentive/top1`, `cifar10_knn/top1`)" in text
    assert "new probes (`probes=default`) | cam | 10 | 8 |" in text
    assert readme(tmp_path) == text


def test_motion_label_section_pairs_each_run_with_its_random_init(tmp_path):
    import pandas as pd
    from scipy import stats as st

    from analysis.sensitivity import motion_table, readme

    att_pre, att_rnd = [0.95, 0.94, 0.96], [0.96, 0.95, 0.95]  # random init already reads direction
    lin_pre, lin_rnd = [0.55, 0.60, 0.50], [0.40, 0.38, 0.37]
    rows = [
        {
            "sweep": "data_mix",
            "variant": "joint",
            "seed": s,
            "code_version": "abc1234",
            "probe/mnist_video/direction_top1": att_pre[s],
            "probe_random/mnist_video/direction_top1": att_rnd[s],
            "probe/mnist_video_linear/direction_top1": lin_pre[s],
            "probe_random/mnist_video_linear/direction_top1": lin_rnd[s],
        }
        for s in range(3)
    ]
    rows.append({**rows[0], "variant": "video"})  # no baseline of its own in practice: not this section's
    results = pd.DataFrame(rows)
    m = motion_table(results).set_index("head")
    lin = m.loc["linear (average-pooled tokens)"]
    assert lin["gap"] == pytest.approx(0.5 / 3) and lin["seeds"] == 3
    assert lin["p"] == pytest.approx(st.ttest_rel(lin_pre, lin_rnd).pvalue)
    assert m.loc["attentive", "random"] == pytest.approx(0.9533, abs=1e-4)
    results.to_csv(tmp_path / "results.csv", index=False)
    text = readme(tmp_path, tmp_path / "results.csv")
    assert "## A motion label" in text and "`mnist_video_linear/direction_top1`" in text
    said = "pretraining lifts it beyond noise" if lin["p"] < 0.05 else "cannot be told"
    assert said in text
    assert "## A motion label" not in readme(tmp_path)  # no results file: no section
