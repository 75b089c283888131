"""analysis.verdict_changes: the paper's directions of two results tables side by side."""

from analysis.verdict_changes import compare, main, markdown
from tests.test_analysis import base_config  # noqa: F401  (fixture)
from tests.test_findings import _no_random, runs  # noqa: F401  (runs: fixture)


def test_a_direction_that_became_resolvable_is_a_change_with_what_differs_beside_it(runs, tmp_path):  # noqa: F811
    # old: within noise over 3 seeds (token - block: +0.01, -0.02, +0.015); new: holds (+0.03 at each seed)
    old = _no_random(runs, [0.10, 0.30, 0.50], [0.11, 0.28, 0.515])
    new = _no_random(runs, [0.10, 0.30, 0.50], [0.13, 0.331, 0.529])
    old["config/steps"], new["config/steps"] = 1000, 2000
    old["config/mask.buckets"], new["config/mask.buckets"] = 8.0, 8  # a float column (gaps) against an int one
    new = new.drop(columns=[c for c in new if "/mnist_video/" in c])  # a probe the new runs did not run
    table = compare(old, new)
    row = table.set_index(["direction", "metric"]).loc[("dense token-level loss", "probe/shapes_det/ap")]
    assert (row["old_verdict"], row["new_verdict"], row["changed"]) == ("cannot tell", "holds", True)
    assert row["old_n"] == row["new_n"] == 3 and row["new_change"] > row["old_change"]
    assert "steps 1000 -> 2000" in row["differs"] and "could have seen" in row["differs"]
    assert "seeds paired" not in row["differs"]  # 3 on both sides
    assert "mask.buckets" not in row["differs"]  # 8.0 and 8 are the same value
    only_old = table[table["new_verdict"] == "not measured"]
    assert len(only_old) and not only_old["changed"].any()  # measured in one table only: not a change
    text = markdown(table, "old.csv", "new.csv")
    both = len(table) - len(only_old)
    assert f"1 of the {both} (sweep, ingredient, metric) rows measured in both changed verdict class" in text
    assert (
        "| dense token-level loss | `shapes_det/ap` | +0.002 ± " in text
        and "(n=3): holds | **yes** |" in text
    )
    assert "`mnist_video/" not in text  # rows measured in one table only are counted, not tabled
    assert (
        f"Measured in `old.csv` only ({len(only_old)} rows, not compared): loss_granularity (preset=tiny)"
        in text
    )
    # the same table on both sides: nothing changed
    assert not compare(new, new)["changed"].any()


def test_a_missing_results_file_is_named():
    import pytest

    with pytest.raises(SystemExit, match="no results file /nonexistent.csv"):
        main(["/nonexistent.csv", "/nonexistent.csv"])
