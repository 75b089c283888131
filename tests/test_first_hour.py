"""What a new user meets first: a sweep's --help, the metrics and directions figures, the notebook's install.

* ``--help`` of a sweep lists the engine's config groups with their options (Hydra's own listing shows only
  the sweep config's search path), the keys of the sweep and its axis; the listing in
  ``sweeps/conf/hydra/help/sweeps.yaml`` is checked against ``vjepa/conf/``.
* The metrics figure draws effects, each variant minus the first paired by seed, on axes that hold 0 (the
  paper's differences as bars from 0 on a twin axis sharing the zero line), an interval that includes 0 as
  within noise, and a metric without range in grey.
* The notebook has its own optional extra and a nox session that runs it headless.
"""

import dataclasses
import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.colors import to_rgba

from analysis import plots
from analysis.collect import collect
from analysis.summary import summarize
from tests.test_analysis import base_config, make_sweeps  # noqa: F401  (base_config: fixture)

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ROOT / "vjepa" / "conf"
HELP = ROOT / "sweeps" / "conf" / "hydra" / "help" / "sweeps.yaml"


# ---- --help ---------------------------------------------------------------------------------------------
def _help(script: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, f"sweeps/{script}.py", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def _group_lines(text: str) -> dict[str, set[str]]:
    """group -> options, from the lines ``  <group>   opt | opt ...   (now: ...)`` of a help text."""
    found = re.findall(r"^  (\w+) +([\w| ]+?) +\(now: ", text, flags=re.M)
    return {g: {o.strip() for o in opts.split("|")} for g, opts in found}


def test_sweep_help_lists_the_engines_groups_its_keys_and_its_axis():
    out = _help("predictor_width")
    groups = _group_lines(out)
    for group, some in {
        "model": {"micro", "tiny", "huge"},
        "mask": {"multiblock", "vjepa21"},
        "loss": {"token", "block"},
        "probes": {"default", "fast", "none"},
        "preset": {"tiny", "small", "vith16"},
    }.items():
        assert some <= groups[group], (group, groups.get(group))
    assert "preset     tiny | small | vitl16 | vith16 | vitg14   (now: tiny)" in out  # the choice composed
    for key in ("dry_run", "power.effect", "cluster.partition", "hydra.sweeper.recorded", "seed=0"):
        assert key in out, key
    # the axis, as configured (per preset), before the groups
    assert out.index("Axis: {'predictor.width': {'tiny': [16, 32, 64, 128]") < out.index("model ")
    assert "\nmodel:\n  name: micro" in out  # and every key, as composed
    assert "context_variant" not in out  # another sweep's group: not this sweep's to set


def test_hpo_help_lists_the_groups_and_the_search_keys():
    out = _help("hpo")
    assert {"model", "mask", "loss", "probes", "preset", "cluster"} <= set(_group_lines(out))
    assert "hpo.n_trials" in out and "dry_run" in out and "hydra.sweeper" not in out


def test_help_template_lists_every_engine_group_and_option():
    """The help's hand-written listing stays in step with vjepa/conf/: each group directory with its
    options (yaml files), no more and no fewer."""
    template = yaml.safe_load(HELP.read_text())["template"]
    listed = _group_lines(template)
    on_disk = {
        d.name: {f.stem for f in d.glob("*.yaml")} for d in sorted(GROUPS.iterdir()) if list(d.glob("*.yaml"))
    }
    assert listed == on_disk
    for group in on_disk:  # each line says the choice this command composed
        assert "${hydra.runtime.choices." + group + "}" in template


def test_every_sweep_config_says_what_it_sweeps():
    help_group = {"override hydra/help": "sweeps"}
    for path in sorted((ROOT / "sweeps" / "conf").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if path.stem == "base":
            assert help_group in cfg["defaults"] and cfg["hydra"]["help"]["footer"]
            continue
        assert "base" in cfg["defaults"] or help_group in cfg["defaults"], path.name
        header = cfg["hydra"]["help"]["header"]
        assert header.startswith(f"{path.stem}: "), path.name
        if "base" in cfg["defaults"]:
            assert "${hydra.sweeper.grid}" in header, path.name


# ---- figures --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(tmp_path_factory, base_config):  # noqa: F811
    root = tmp_path_factory.mktemp("sweeps_out")
    make_sweeps(root, base_config)
    return collect([root])


def _summary(results, sweep):
    return next(s for s in summarize(results) if s.sweep == sweep)


def _zero_height(ax) -> float:
    lo, hi = ax.get_ylim()
    return (0 - lo) / (hi - lo)


def test_metrics_figure_axes_hold_zero_and_the_papers_bars_start_there(results):
    for sweep in ("loss_granularity", "predictor_width", "mask_ratio"):
        s = _summary(results, sweep)
        fig = plots.plot_ablation(s)
        shown = [ax for ax in fig.axes if ax.get_visible()]  # the grid's spare cells are hidden
        panels, twins = shown[: len(s.metrics)], shown[len(s.metrics) :]
        assert twins, sweep  # every one of these sweeps has a paper table
        for ax, metric in zip(panels, s.metrics, strict=True):
            lo, hi = ax.get_ylim()
            assert lo < 0 < hi, (sweep, metric)  # differences are read from the zero line
            e = plots.effects(s, metric)
            values = np.concatenate([e[["low", "high", "mean"]].to_numpy(float).ravel(), *e["seeds"]])
            values = values[np.isfinite(values)]
            assert ((values >= lo) & (values <= hi)).all(), (sweep, metric)  # nothing cut off
        for twin in twins:
            host = next(ax for ax in panels if ax.get_shared_x_axes().joined(ax, twin))
            lo, hi = twin.get_ylim()
            assert min(lo, hi) <= 0 <= max(lo, hi)
            assert twin.patches and all(p.get_y() == 0 for p in twin.patches)  # bars from 0
            assert _zero_height(twin) == pytest.approx(_zero_height(host))  # one zero line
    # the bars are the paper's differences: loss_granularity's AP, token minus block
    s = _summary(results, "loss_granularity")
    twin = [ax for ax in plots.plot_ablation(s).axes if ax.get_visible()][len(s.metrics)]
    assert [p.get_height() for p in twin.patches] == pytest.approx([3.1])


def test_an_interval_that_includes_zero_is_drawn_within_noise(results):
    s = _summary(results, "predictor_width")
    e = plots.effects(s, "probe/shapes_det/ap").set_index("variant")
    # each width minus 24 (0.20 / 0.22), paired over seeds 0 and 1
    assert list(e.index) == ["48", "96", "192"]
    assert e["mean"].tolist() == pytest.approx([0.10, 0.01, -0.10])
    assert e.loc["96", "low"] < 0 < e.loc["96", "high"] and e.loc["96", "within_noise"]
    assert not e.loc["48", "within_noise"] and not e.loc["192", "within_noise"]
    fig = plots.plot_ablation(s)
    marks = [c.lines[0] for c in fig.axes[0].containers]  # one errorbar per width, in order
    white = to_rgba("white")
    assert [to_rgba(m.get_markerfacecolor()) == white for m in marks] == [False, True, False]
    assert to_rgba(marks[1].get_color()) == to_rgba(plots.NOISE_COLOR)
    assert to_rgba(marks[0].get_color()) == to_rgba(plots.OURS_COLOR)
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert "within seed noise (interval includes 0) or one seed" in labels
    # one seed gives no interval: within noise too (mask_ratio has seed 0 only)
    one = plots.effects(_summary(results, "mask_ratio"), "probe/shapes_det/ap")
    assert one["within_noise"].all() and one["half"].isna().all()


def test_a_metric_without_range_is_drawn_grey(results):
    s = _summary(results, "predictor_width")
    ranges = {**s.ranges, "probe/shapes_det/ap": {"has_range": False}}
    fig = plots.plot_ablation(dataclasses.replace(s, ranges=ranges))
    ax = fig.axes[0]
    assert ax.get_title().startswith("shapes_det/ap (no range)")
    assert to_rgba(ax.get_facecolor()) == to_rgba(plots.NO_RANGE_FACE)
    # 48 lies beyond seed noise, but on a metric without range it stays grey
    assert to_rgba(ax.containers[0].lines[0].get_color()) == to_rgba(plots.NOISE_COLOR)
    assert "no range: random init as good (all grey)" in {t.get_text() for t in fig.legends[0].get_texts()}


def test_directions_figure_draws_within_noise_hollow_and_grey(results):
    s = _summary(results, "loss_granularity")
    d = s.directions.copy()
    d.loc[0, "verdict"] = "opposite sign, within noise"  # one seed's 0.0001 must not read "the other way"
    d.loc[1, "verdict"] = "same sign, no range"
    fig = plots.plot_directions(dataclasses.replace(s, directions=d))
    ax = fig.axes[0]
    marks = [c.lines[0] for c in ax.containers]
    white = to_rgba("white")
    assert to_rgba(marks[0].get_markerfacecolor()) == white
    assert to_rgba(marks[0].get_color()) == to_rgba(plots.NOISE_COLOR)
    assert marks[1].get_marker() == "s" and to_rgba(marks[1].get_markerfacecolor()) == white
    assert marks[2].get_markerfacecolor() == marks[2].get_color()  # reversed: filled
    texts = [t.get_text() for t in ax.texts]
    assert texts[0].endswith("; opposite sign, within noise") and texts[2].endswith("; reversed")


# ---- demo -----------------------------------------------------------------------------------------------
@functools.cache  # nox registers each session as the module loads: a second load warns of duplicates
def _noxfile():
    pytest.importorskip("nox")
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    return noxfile


def test_the_demo_trains_both_losses_as_valid_runs_that_probe_segmentation_beside_random_init():
    """`nox -s demo`'s sweep: block and token loss at the demo's schedule, valid configurations whose probes
    keep the headline task (the generated-image segmentation) with the random-init baseline."""
    from tests.test_sweeps import _compose_point
    from vjepa.config_check import check_config
    from vjepa.probes.modality import trained_tasks

    demo = _noxfile().DEMO
    for loss in ("block", "token"):
        _, train = _compose_point(
            "loss_granularity", ["preset=tiny", "probes=synthetic", *demo, f"loss={loss}"]
        )
        check_config(train)
        assert train.loss.granularity == loss and train.data.mix == "image" and train.probes.baseline
        kept, dropped = trained_tasks(train.probes, train)
        assert "shapes_seg" in kept.tasks and "shapes_seg" not in dropped


# ---- notebook -------------------------------------------------------------------------------------------
def test_notebook_has_its_extra_and_a_headless_session():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", r)[0] for r in extras["notebook"]}
    assert {"nbclient", "nbformat", "ipykernel"} <= names and names & {"jupyterlab", "notebook"}
    noxfile = _noxfile()
    assert callable(noxfile.notebook) and (ROOT / noxfile.NOTEBOOK).is_file()
    compile(noxfile.EXECUTE, "EXECUTE", "exec")
    assert "notebook_out/" in (ROOT / ".gitignore").read_text().split()
    readme = (ROOT / "README.md").read_text()
    assert "jupyter lab analysis/notebooks/ablations.ipynb" in readme and "nox -s notebook" in readme
