"""Hyper-parameter search: optuna's ask/tell loop, one pretraining run per trial submitted through submitit.

    python sweeps/hpo.py preset=tiny hpo.n_trials=20              # objective: probe/cifar10_knn/top1 (max)
    python sweeps/hpo.py preset=tiny probes=none hpo.n_trials=8   # no probes: loss_final (min)
    python sweeps/hpo.py preset=tiny dry_run=true                 # study state and compute, nothing run

Settings: ``hpo`` in sweeps/conf/hpo.yaml (study, n_trials, parallel, launcher, objective, search space);
any training key of the engine's config can be set as usual and is shared by every trial. Trial n trains in
``<study dir>/trial=<n>`` with the sampled values applied. The study (SQLite, in the study dir) survives
the driver: running the command again continues it up to ``hpo.n_trials``. Trials a killed driver left
RUNNING are taken over: told their value if their run completed meanwhile, watched if their scheduler job
still runs, else resubmitted into the same directory (resuming from its checkpoint) with the same values.
Exit status 1 if a trial failed in this invocation (failed trials are told FAIL and stay in the study).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sweeps.common import (
    compute_line,
    default_launcher,
    engine_config,
    local_gpus,
    local_slots,
    make_executor,
    run_state,
)


def distributions(space) -> dict:
    """optuna distributions of the search space, keyed by dotted config key."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for key, spec in space.items():
        if "choices" in spec:
            out[key] = CategoricalDistribution(list(spec.choices))
        elif "low" in spec:
            kind = IntDistribution if spec.get("type", "float") == "int" else FloatDistribution
            out[key] = kind(spec.low, spec.high, log=bool(spec.get("log", False)))
        else:
            out.update({f"{key}.{k}": v for k, v in distributions(spec).items()})
    return out


def objective_of(train_cfg: DictConfig, hpo: DictConfig) -> tuple[str, str]:
    """(metrics.json key, direction): the probe objective when the runs probe with its task, else the
    fallback."""
    probes = train_cfg.get("probes")
    tasks = (probes.get("tasks") if probes is not None else None) or {}
    metric = str(hpo.objective.metric)
    task = metric.split("/")[1] if metric.startswith("probe") and metric.count("/") >= 2 else None
    chosen = hpo.objective if tasks and (task is None or task in tasks) else hpo.fallback
    return chosen.metric, chosen.direction


class Search:
    def __init__(self, cfg: DictConfig):
        from hydra.core.hydra_config import HydraConfig

        self.cfg, self.hpo = cfg, cfg.hpo
        hydra_cfg = HydraConfig.get()
        preset = hydra_cfg.runtime.choices.get("preset")
        out = Path(os.environ.get("VJEPA_SWEEPS_OUT", "sweeps_out"))
        self.dir = out / "hpo" / str(self.hpo.study) / f"preset={preset}"
        self.overrides = list(hydra_cfg.overrides.task)
        self.space = distributions(self.hpo.space)
        self.metric, self.direction = objective_of(engine_config(cfg), self.hpo)
        self.study = None if cfg.dry_run and not (self.dir / "study.db").exists() else self.open_study()
        auto = default_launcher().removeprefix("submitit_")
        self.kind = auto if self.hpo.launcher == "auto" else str(self.hpo.launcher)
        self.failed = 0

    def open_study(self):
        """The study (created on first use), checked to optimise this objective."""
        import optuna

        self.dir.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=str(self.hpo.study),
            storage=f"sqlite:///{self.dir.absolute()}/study.db",
            direction=self.direction,
            load_if_exists=True,
        )
        known = study.user_attrs.get("metric")
        if known is None:
            study.set_user_attr("metric", self.metric)
        elif known != self.metric:
            raise SystemExit(
                f"[hpo] study {self.hpo.study!r} optimises {known!r}, not {self.metric!r}; "
                "use another hpo.study or the same objective"
            )
        study.sampler = optuna.samplers.TPESampler(seed=int(self.hpo.seed) + len(study.trials))
        return study

    def trial_dir(self, number: int) -> Path:
        return self.dir / f"trial={number}"

    def trial_config(self, number: int, params: dict, threads: int | None) -> DictConfig:
        updates = {**params, "run_dir": str(self.trial_dir(number).absolute())}
        if threads is not None:
            updates["threads"] = threads
        return engine_config(self.cfg, updates)

    def finish(self, number: int, error: str | None) -> None:
        """Tell the study the outcome of trial ``number`` from its run directory."""
        from optuna.trial import TrialState

        from vjepa.runfiles import read_json

        metrics_path = self.trial_dir(number) / "metrics.json"
        value = None
        state, detail = run_state(self.trial_dir(number), ask_scheduler=False)  # its job is over
        if error is None and state == "completed":
            value = read_json(metrics_path).get(self.metric)
            error = None if value is not None else f"metrics.json has no {self.metric!r}"
        if value is None:
            self.failed += 1
            error = error or f"{state} {detail}"
            print(f"[hpo] trial {number} failed: {error}", flush=True)
            self.study.tell(number, state=TrialState.FAIL)
        else:
            print(f"[hpo] trial {number}: {self.metric} = {value:.6g}", flush=True)
            self.study.tell(number, value)

    def run(self) -> int:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False) if self.study else []
        finished = sum(t.state.is_finished() for t in trials)
        leftovers = [t for t in trials if t.state == TrialState.RUNNING]
        new = max(0, int(self.hpo.n_trials) - finished - len(leftovers))
        slots, threads = int(self.hpo.parallel or 4), None
        if self.kind == "local":
            runs = new + len(leftovers)
            slots, threads = local_slots(self.cfg.threads, runs, self.hpo.parallel, local_gpus())
        if self.cfg.threads not in (None, "auto"):
            threads = None
        self.print_plan(finished, leftovers, new, slots, threads)
        if self.cfg.dry_run:
            return 0
        executor = make_executor(self.kind, self.dir / ".submitit", self.cfg.cluster, f"hpo-{self.hpo.study}")
        inflight: dict[int, object] = {}  # trial number -> submitit job, or None: watched through its run dir
        for t in leftovers:
            state, _ = run_state(self.trial_dir(t.number))
            if state == "completed":
                self.finish(t.number, None)
            elif state == "active":
                inflight[t.number] = None
            else:
                inflight[t.number] = self.submit(executor, t.number, t.params, threads)
        while inflight or new:
            while new and len(inflight) < slots:
                trial = self.study.ask(self.space)
                inflight[trial.number] = self.submit(executor, trial.number, trial.params, threads)
                new -= 1
            time.sleep(1.0)
            for number, job in list(inflight.items()):
                if job is None and run_state(self.trial_dir(number))[0] != "active":
                    self.finish(number, None)
                elif job is not None and job.done():
                    error = job.exception()
                    self.finish(number, None if error is None else f"{type(error).__name__}: {error}")
                else:
                    continue
                del inflight[number]
        self.print_summary()
        return 1 if self.failed else 0

    def submit(self, executor, number: int, params: dict, threads: int | None):
        """Submit trial ``number``; on SLURM its job.json names the queued job at once, so a rerun while it
        waits in the queue watches it (``run_state``: active) instead of submitting it again."""
        from sweeps.common import TrialJob, record_queued_job
        from vjepa.runfiles import atomic_write_text

        cfg = self.trial_config(number, params, threads)
        run_dir = Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        overrides = self.overrides + [f"{k}={v}" for k, v in params.items()]
        atomic_write_text(run_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(overrides)))
        print(f"[hpo] trial {number} -> {run_dir}: {params}", flush=True)
        job = executor.submit(TrialJob(), OmegaConf.to_yaml(cfg))
        if self.kind == "slurm":
            record_queued_job(run_dir, str(job.job_id))
        return job

    def print_plan(self, finished: int, leftovers: list, new: int, slots: int, threads: int | None) -> None:
        from vjepa.flops import step_cost

        base = engine_config(self.cfg)
        per_run = step_cost(base).flops * base.steps
        held = f"{finished + len(leftovers)} trials ({finished} finished, {len(leftovers)} left running)"
        print(
            f"[hpo] study {self.hpo.study!r} in {self.dir}: {held if self.study else 'new'}; "
            f"objective {self.metric} ({self.direction})"
        )
        print(
            f"[hpo] to run: {len(leftovers)} left running + {new} new trials, {slots} at a time on "
            f"{self.kind}" + (f" x {threads} thread(s)" if threads else "")
        )
        total = per_run * (len(leftovers) + new)
        cost = compute_line(total, self.hpo.gpu_peak_tflops, self.hpo.mfu)
        print(f"[hpo] compute at the base config: {cost}", flush=True)

    def print_summary(self) -> None:
        from optuna.trial import TrialState

        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        failed = self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        print(f"[hpo] study {self.hpo.study!r}: {len(done)} complete, {len(failed)} failed")
        if done:
            best = self.study.best_trial
            print(
                f"[hpo] best: trial {best.number}, {self.metric} = {best.value:.6g}, {best.params}",
                flush=True,
            )


@hydra.main(version_base=None, config_path="conf", config_name="hpo")
def main(cfg: DictConfig) -> None:
    sys.exit(Search(cfg).run())


if __name__ == "__main__":
    main()
