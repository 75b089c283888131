import os
import subprocess
import sys

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweeps.common import ROOT
from tests.conftest import TINY_TEST
from vjepa.runfiles import read_json

# one searched key, kept small so that every trial is a tiny run (probes=none: objective loss_final)
ARGS = [
    "preset=tiny",
    *TINY_TEST,
    "steps=2",
    "hpo.launcher=local",
    "hpo.parallel=2",
    "~hpo.space.mask",
    "~hpo.space.predictor",
    "~hpo.space.optim.weight_decay",
]
SPACE = {"optim.base_lr": FloatDistribution(5e-4, 5e-3, log=True)}


def _hpo(out, *args):
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(out)}
    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "hpo.py"), *ARGS, *args],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_second_invocation_continues_the_study_and_takes_over_a_trial_left_running(tmp_path):
    first = _hpo(tmp_path, "hpo.n_trials=2")
    assert first.returncode == 0, first.stdout + first.stderr
    study_dir = tmp_path / "hpo" / "default" / "preset=tiny"
    storage = f"sqlite:///{study_dir / 'study.db'}"
    study = optuna.load_study(study_name="default", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.user_attrs["metric"] == "loss_final" and study.direction.name == "MINIMIZE"
    for t in study.trials:
        assert t.value == read_json(study_dir / f"trial={t.number}" / "metrics.json")["loss_final"]
        overrides = (study_dir / f"trial={t.number}" / "overrides.yaml").read_text()
        assert f"optim.base_lr={t.params['optim.base_lr']}" in overrides
    mtimes = {p: p.stat().st_mtime_ns for p in study_dir.glob("trial=*/**/*") if p.is_file()}

    # a driver killed after asking for trial 2 leaves it RUNNING, with no run directory yet
    left = study.ask(SPACE)
    second = _hpo(tmp_path, "hpo.n_trials=3")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 left running + 0 new trials" in second.stdout
    study = optuna.load_study(study_name="default", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    resumed = study.trials[2]
    assert resumed.params == left.params
    assert resumed.value == read_json(study_dir / "trial=2" / "metrics.json")["loss_final"]
    config = (study_dir / "trial=2" / "config.yaml").read_text()
    assert f"base_lr: {left.params['optim.base_lr']}" in config
    assert {p: p.stat().st_mtime_ns for p in study_dir.glob("trial=[01]/**/*") if p.is_file()} == mtimes

    # analysis reads the trials as the sweep hpo-<study>: not the ablation of the study's name
    from analysis.collect import collect, curves_file_stem

    rows = collect([tmp_path])
    assert set(rows["sweep"]) == {"hpo-default"} and set(rows["preset"]) == {"tiny"}
    assert sorted(rows["run_id"]) == [f"hpo/default/preset=tiny/trial={n}" for n in range(3)]
    assert set(rows["axis"]) == {"optim.base_lr"} and rows["status"].eq("completed").all()
    (command,) = set(rows["command"])
    assert (
        command.startswith("python sweeps/hpo.py hpo.study=default preset=tiny") and "base_lr" not in command
    )
    assert curves_file_stem(rows["run_id"].iloc[0]) == "hpo-default-tiny"


def test_the_default_objective_is_a_probe_with_range_and_falls_back_without_its_task():
    from omegaconf import OmegaConf

    from sweeps.hpo import objective_of

    hpo = OmegaConf.load(ROOT / "sweeps" / "conf" / "hpo.yaml").hpo
    assert hpo.objective.metric == "probe/cifar10_knn/top1"
    default = OmegaConf.load(ROOT / "vjepa" / "conf" / "probes" / "default.yaml")
    assert objective_of(OmegaConf.create({"probes": default}), hpo) == ("probe/cifar10_knn/top1", "maximize")
    fast = OmegaConf.load(
        ROOT / "vjepa" / "conf" / "probes" / "fast.yaml"
    )  # generated data only: no CIFAR-10
    assert objective_of(OmegaConf.create({"probes": fast}), hpo) == ("loss_final", "minimize")
    assert objective_of(OmegaConf.create({"probes": {"tasks": {}}}), hpo) == ("loss_final", "minimize")
