"""What the sweep scripts share: the entry point, the task every job runs, run states, scheduler parameters.

* ``ablation_main(name)``: the whole of a sweep script. Always a Hydra multirun of ``sweeps/conf/<name>.yaml``
  through the ablation sweeper (``sweeps/sweeper.py``); the launcher is ``submitit_slurm``
  where ``sbatch`` is on PATH and ``submitit_local`` otherwise, unless ``hydra/launcher=...`` is given.
* ``run_point(cfg)``: the Hydra task of every point: trains in the job's output dir with the engine config
  (sweep-only keys removed), after recording which scheduler job works on the directory (``job.json``).
* ``run_state(run_dir)``: completed | active (its scheduler job is still queued or running) | the status.json
  state | new. Completed and active runs are never launched again.
* ``scheduler_params(cluster, kind)``: submitit parameters of one run from the ``cluster`` group;
  ``relay_gpus_to_local_jobs`` / ``restore_local_gpus``: local jobs see the GPUs the sweep's process sees.
* ``launch_device_type``, ``local_slots``, ``started_threads``, ``measured_rate``, ``timed_rate``: where and how
  fast the runs of a local or SLURM launch train. Runs already on disk or recorded elsewhere: ``sweeps.existing_runs``.
* ``detach_local_jobs``, ``live_controllers``, ``run_progress``, ``job_logs``: the local jobs a sweep started,
  where each run stands, where its logs are (the sweeper's ``LocalMonitor``).

``sweeps`` is installed with the engine (``pip install -e .``), and so is the plugin shim
``sweeps/plugins/hydra_plugins/vjepa_sweeps`` as ``hydra_plugins.vjepa_sweeps`` (Hydra only instantiates
sweepers from ``hydra_plugins``): jobs unpickle references into both wherever they start.
``register_sweeper()`` registers the ablation sweeper with Hydra, which does not find it by scanning
``hydra_plugins`` in an editable install.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

import vjepa.train
from vjepa.schema import SWEEP_KEYS  # configuration of the sweep, not of the runs
from vjepa.trainer import available_cpus

ROOT = Path(__file__).resolve().parents[1]
# squeue states of a job that may still train in its run dir (not COMPLETING: its processes are done)
LIVE_JOB_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STOPPED",
}


def _div(a, b) -> int:
    if int(b) <= 0 or int(a) % int(b):
        raise ValueError(f"{a} is not a positive multiple of {b}")
    return int(a) // int(b)


def _run_name(overrides, engine_excludes) -> str:
    """Run directory name of a sweep point: the engine's name (``vjepa.train.run_dir_name``) of its
    overrides, also without the preset (a directory level above) and the sweep's own keys and their sub-keys
    (``cluster.partition=gpu`` names no run)."""
    return vjepa.train.run_dir_name(overrides, [*engine_excludes, "preset", *SWEEP_KEYS])


for _name, _fn in (("sweeps.div", _div), ("sweeps.run_name", _run_name)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def register_sweeper() -> None:
    """Register the ablation sweeper (``hydra_plugins.vjepa_sweeps.AblationSweeper``) with Hydra in this
    process. Hydra registers the plugins it finds by walking the ``hydra_plugins`` namespace, which misses a
    plugin that an editable install maps in by an import hook; registering twice is harmless."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.vjepa_sweeps import AblationSweeper

    Plugins.instance().register(AblationSweeper)


def slurm_reachable(timeout_s: float = 10.0) -> bool:
    """``sbatch`` is installed and a controller answers (a client without a cluster is not a cluster)."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    try:
        return (
            subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, timeout=timeout_s).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def default_launcher() -> str:
    return "submitit_slurm" if slurm_reachable() else "submitit_local"


def sweep_argv(args: list[str], launcher: str) -> list[str]:
    """Command-line arguments of a sweep script as Hydra gets them: a multirun unless another mode is asked
    for, and ``hydra/launcher=<launcher>`` unless one is given."""
    args = list(args)
    if not any(a.startswith("hydra/launcher=") for a in args):
        # next to the other overrides: argparse takes them as one group of positional arguments
        first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
        args.insert(first, f"hydra/launcher={launcher}")
    modes = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion"}
    if not modes & set(args):
        args.insert(0, "--multirun")
    return args


def foreign_checkout(script: str | os.PathLike | None) -> Path | None:
    """The checkout a sweep script belongs to when it is not the one this process imports the toolkit from
    (a worktree run with the Python of another checkout's editable install, whose import hook maps
    ``vjepa``, ``sweeps`` and the sweeper plugin to that checkout): else None. Its runs would train the other
    checkout's code while recording this one's commit."""
    if not script or not str(script).endswith(".py"):
        return None
    path = Path(script).resolve()
    if path.parent.name != "sweeps" or not (path.parents[1] / "vjepa" / "__init__.py").is_file():
        return None  # not a sweep script of a checkout
    from hydra_plugins import vjepa_sweeps

    imported = {
        ROOT,
        Path(vjepa.train.__file__).resolve().parents[1],
        Path(vjepa_sweeps.__file__).resolve().parents[4],
    }
    return path.parents[1] if imported != {path.parents[1]} else None


def ablation_main(config_name: str) -> None:
    """Run the sweep of ``sweeps/conf/<config_name>.yaml`` with this process's command line."""
    import hydra

    other = foreign_checkout(sys.argv[0])
    if other is not None:
        raise SystemExit(
            f"{sys.argv[0]} belongs to the checkout {other}, but this Python imports the toolkit from {ROOT} "
            f"(an editable install of that checkout): its runs would train {ROOT}'s code. Put this checkout's "
            f"code first: PYTHONPATH={other}:{other}/sweeps/plugins {sys.executable} {sys.argv[0]} ... "
            "(the reproduce_*.sh scripts do this themselves), or install this checkout."
        )
    register_sweeper()

    sys.argv[1:] = sweep_argv(sys.argv[1:], default_launcher())
    hydra.main(version_base=None, config_path="conf", config_name=config_name)(run_point)()


def engine_config(cfg: DictConfig, updates: dict | None = None) -> DictConfig:
    """The training configuration of a sweep job: ``cfg`` with ``updates`` (dotted keys) applied, resolved,
    without the sweep's own keys (nor ``hydra``)."""
    cfg = OmegaConf.create({k: v for k, v in cfg.items_ex(resolve=False) if k != "hydra"})
    for key, value in (updates or {}).items():
        OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.resolve(cfg)
    with open_dict(cfg):
        for key in SWEEP_KEYS:
            cfg.pop(key, None)
    return cfg


def run_point(cfg: DictConfig) -> dict | None:
    """The Hydra task of a sweep point, run in its job: train in the job's output dir."""
    restore_local_gpus()
    from vjepa.train import run

    cfg = engine_config(cfg)
    record_job(cfg.run_dir)
    return run(cfg)


class TrialJob:
    """A submitit job training one resolved configuration (YAML); requeued to resume when preempted."""

    def __call__(self, cfg_yaml: str) -> dict | None:
        restore_local_gpus()
        from vjepa.train import run

        cfg = OmegaConf.create(cfg_yaml)
        record_job(cfg.run_dir)
        return run(cfg)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def make_executor(kind: str, folder, cluster, name: str):
    """A submitit executor for one run per job (kind: slurm | local), sized by the ``cluster`` group."""
    import submitit

    if kind == "local":
        relay_gpus_to_local_jobs()

    params = {k: v for k, v in scheduler_params(cluster, kind).items() if v is not None}
    generic = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes"}
    init = {f"{kind}_max_num_timeout": params.pop("max_num_timeout")} if "max_num_timeout" in params else {}
    executor = submitit.AutoExecutor(folder=folder, cluster=kind, **init)
    specific = {k if k in generic else f"{kind}_{k}": v for k, v in params.items()}
    executor.update_parameters(name=name, **specific)
    return executor


# submitit's local executor sets each job's CUDA_VISIBLE_DEVICES to its first ``gpus_per_node`` devices, "" when
# given none, and its AutoExecutor cannot say which devices: a local sweep on a GPU machine trained every run
# on the CPU. The launching process passes its own visibility on in LOCAL_GPUS_ENV (jobs inherit its
# environment); a local job puts it back before anything starts CUDA.
LOCAL_GPUS_ENV = "VJEPA_LOCAL_CUDA_VISIBLE_DEVICES"


def relay_gpus_to_local_jobs(environ=None) -> None:
    """Record this process's CUDA_VISIBLE_DEVICES (or that it has none) for the local jobs it starts."""
    environ = os.environ if environ is None else environ
    environ[LOCAL_GPUS_ENV] = json.dumps(environ.get("CUDA_VISIBLE_DEVICES"))


def restore_local_gpus(environ=None) -> None:
    """In a submitit local job: the launching process's CUDA_VISIBLE_DEVICES, unset if it had none. Elsewhere
    (SLURM jobs, direct runs) nothing changes."""
    environ = os.environ if environ is None else environ
    if environ.get("SUBMITIT_EXECUTOR") != "local" or LOCAL_GPUS_ENV not in environ:
        return
    visible = json.loads(environ[LOCAL_GPUS_ENV])
    if visible is None:
        environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        environ["CUDA_VISIBLE_DEVICES"] = visible


# ---- run directories ----------------------------------------------------------------------------------
class RunDirTaken(RuntimeError):
    """Another live scheduler job trains the run directory this job was given."""


def record_job(run_dir) -> None:
    """Write job.json: the scheduler job training in ``run_dir`` (nothing outside a submitit job).

    Refuses (``RunDirTaken``, before anything is written) where job.json names another job that still
    lives: two jobs on one directory would interleave its checkpoints and logs. That happens when a point
    is submitted twice, e.g. a sweep rerun while its first jobs were still queued (a queued job has written
    nothing yet, so the rerun sees the point as new). The same job after a requeue has the same id. Every
    rank of a job reads the same file, so they refuse together."""
    kind = os.environ.get("SUBMITIT_EXECUTOR")
    if kind not in ("slurm", "local"):
        return
    import submitit

    from vjepa.runfiles import write_json

    env = submitit.JobEnvironment()
    other = job_active(run_dir)
    if other is not None and str(other) != str(env.job_id):
        raise RunDirTaken(
            f"run_dir={str(run_dir)!r} is trained by {kind} job {other}, which still lives (job.json); this "
            f"job ({env.job_id}) leaves it alone. The point was submitted twice (a sweep rerun while its jobs "
            "were queued?): cancel one of the two jobs, or let this one end and rerun the sweep when the "
            "other has finished."
        )
    if env.global_rank == 0:
        info = {
            "scheduler": kind,
            "job_id": env.job_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        write_json(Path(run_dir) / "job.json", info)


def job_active(run_dir) -> str | None:
    """Id of the scheduler job that may still be working on ``run_dir``, or None."""
    from vjepa.runfiles import read_json

    path = Path(run_dir) / "job.json"
    if not path.exists():
        return None
    info = read_json(path)
    if info["scheduler"] == "slurm":
        if not shutil.which("squeue"):
            return None
        res = subprocess.run(
            ["squeue", "-h", "-j", str(info["job_id"]), "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return info["job_id"] if res.returncode == 0 and LIVE_JOB_STATES & set(res.stdout.split()) else None
    if info["host"] != socket.gethostname():
        return None
    try:
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes()
    except OSError:
        return None
    return str(info["job_id"]) if b"submitit" in cmdline else None


def submitted_job_ids(folder, before: set[str], n: int) -> list[str] | None:
    """The ids, in submission order, of the ``n`` jobs one submitit SLURM submission made, from the job
    folders (submitit's ``%j``) that appeared in ``folder`` since the names ``before`` were there: one job
    ``<id>``, or an array's tasks ``<id>_0`` ... ``<id>_<n-1>`` (task i runs the i-th submission). None until
    all of them are there (submitit makes them right after ``sbatch`` answers)."""
    folder = Path(folder)
    new = {p.name for p in folder.iterdir() if p.is_dir()} - set(before) if folder.is_dir() else set()
    if n == 1:
        ids = [name for name in new if name.isdigit()]
        return ids if len(ids) == 1 else None
    arrays: dict[str, set[int]] = {}
    for name in new:
        array, _, task = name.partition("_")
        if array.isdigit() and task.isdigit():
            arrays.setdefault(array, set()).add(int(task))
    done = [array for array, tasks in arrays.items() if tasks >= set(range(n))]
    return [f"{done[0]}_{i}" for i in range(n)] if len(done) == 1 else None


def record_queued_job(run_dir, job_id: str) -> None:
    """job.json naming the SLURM job submitted for ``run_dir`` while it is queued, so that a rerun of the
    sweep sees the point as active (``job_active``) before the job starts and writes its own. It replaces the
    job.json of an earlier job (a point launched again: that job has ended, or the point would not have been
    launched) and leaves the one this job has already written alone."""
    from vjepa.runfiles import read_json, write_json

    path = Path(run_dir) / "job.json"
    if path.exists() and str(read_json(path).get("job_id")) == str(job_id):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"scheduler": "slurm", "job_id": job_id, "queued": True})


# What a job leaves in its run directory before the trainer writes its first file (config.yaml): Hydra's
# .hydra/ and log, the scheduler job (job.json), and overrides.yaml (which older code wrote before checking
# the config, and adoption rewrites). A directory holding nothing else holds no run.
JOB_RESIDUE = (".hydra", "*.log", "job.json", "overrides.yaml")


def run_entries(run_dir) -> list[str]:
    """The names in ``run_dir`` other than ``JOB_RESIDUE``, sorted; [] where the directory does not exist.
    Only a directory without such entries may be replaced by an adopted run."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return []
    return sorted(
        p.name for p in run_dir.iterdir() if not any(fnmatch.fnmatch(p.name, r) for r in JOB_RESIDUE)
    )


def run_state(run_dir, ask_scheduler: bool = True) -> tuple[str, str]:
    """(state, detail) of a run directory: completed | active | running | interrupted | failed | no_metrics |
    new. ``no_metrics``: status.json says completed but metrics.json is missing (lost or deleted), so the run
    is not done: a launch resumes it from its final checkpoint and writes them, as ``analysis.collect``
    never averages such a run in.

    The states of the files are ``vjepa.runfiles.recorded_state``'s; ``active`` (a live scheduler job works
    on the directory) takes precedence over all but ``completed``. ``ask_scheduler=False``: the job is known to
    be over (its result came back), so never "active"."""
    from vjepa.runfiles import recorded_state

    state, status = recorded_state(run_dir)
    if state == "completed":
        return "completed", ""
    job = job_active(run_dir) if ask_scheduler else None
    if job:
        return "active", f"job {job}"
    if state == "no_metrics":
        return "no_metrics", "status.json says completed but metrics.json is missing"
    detail = status.get("error", "")
    if state == "running":
        step, ckpt = status.get("step", "?"), status.get("checkpoint_step")
        resumes = f", last checkpoint at step {ckpt}" if ckpt is not None and ckpt != step else ""
        detail = f"stopped at step {step}{resumes} without a final status (killed?)"
    return state, detail


def resume_step(status: dict | None) -> int:
    """The step a rerun of the run whose status.json is ``status`` resumes from: its last checkpoint's
    (status.json's ``step`` is the last logged step while it runs; older runs wrote it at checkpoints only)."""
    status = status or {}
    return int(status.get("checkpoint_step", status.get("step")) or 0)


# ---- launching -----------------------------------------------------------------------------------------
def launch_device_type(device, kind: str, gpus_per_node=None) -> str:
    """The device type (cuda | cpu) that a run with ``device`` trains on where a launcher of ``kind``
    (slurm | local | other: this process) starts it. An explicit device is itself; ``auto`` is CUDA on SLURM
    nodes given GPUs (``gpus_per_node``), and for local launches where CUDA is available here, as
    ``vjepa.trainer.resolve_device`` decides in the job."""
    if str(device) != "auto":
        return str(device).split(":")[0]
    if kind == "slurm":
        return "cuda" if gpus_per_node else "cpu"
    return "cuda" if local_gpus() else "cpu"


# ---- local jobs: their processes, progress and logs ---------------------------------------------------
# Every submitit local job is a controller process (`python -m submitit.local._local`, its pid the job id)
# that starts the training process and waits for it. submitit starts controllers in the sweep's process
# group, so a Ctrl-C in the terminal reached them all at once: the controller's KeyboardInterrupt killed its
# task within a second (SIGINT, then SIGKILL), with no checkpoint. A sweep that stops its runs itself
# (``detach_local_jobs``) starts each controller in a session of its own and keeps them in LOCAL_CONTROLLERS.
LOCAL_CONTROLLERS: list = []  # subprocess.Popen of each controller this process started


class _NewSessionSubprocess:
    """``subprocess`` as submitit's ``start_controller`` sees it once detached: Popen in a new session."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 (the name submitit calls)
        return subprocess.Popen(*args, start_new_session=True, **kwargs)


def detach_local_jobs() -> None:
    """From now on, submitit local jobs started by this process run in their own session and process group
    (a terminal's Ctrl-C reaches this process only, which stops them with a checkpoint) and are recorded in
    ``LOCAL_CONTROLLERS``. Idempotent."""
    import submitit.local.local as local

    if getattr(local.start_controller, "_vjepa_detached", False):
        return
    original = local.start_controller

    def start_controller(*args, **kwargs):
        process = original(*args, **kwargs)
        LOCAL_CONTROLLERS.append(process)
        return process

    start_controller._vjepa_detached = True
    local.subprocess = _NewSessionSubprocess()
    local.start_controller = start_controller


def live_controllers() -> list:
    """The local job controllers started here that have not exited."""
    return [p for p in list(LOCAL_CONTROLLERS) if p.poll() is None]


def job_logs(run_dir, submitit_folder) -> tuple[Path, Path] | None:
    """(stderr, stdout) log files of the scheduler job that job.json names for ``run_dir`` (its first task),
    in ``submitit_folder`` (the launcher's, with ``%j``); None before a job has written job.json."""
    from submitit.core.utils import JobPaths

    from vjepa.runfiles import read_json

    path = Path(run_dir) / "job.json"
    if not submitit_folder or not path.exists():
        return None
    try:
        job_id = str(read_json(path)["job_id"])
    except (ValueError, KeyError, OSError):
        return None
    paths = JobPaths(str(submitit_folder), job_id=job_id, task_id=0)
    return paths.stderr, paths.stdout


def run_progress(run_dir) -> dict:
    """Where a run stands, for a progress line: state (status.json's, "starting" before it has one), step,
    steps, loss and samples/s of the last logged step (metrics.jsonl's tail), and the training seconds per
    step over the last logged window (None before two logged steps of this call's process)."""
    from vjepa.runfiles import MetricsLog, read_status

    try:
        status = read_status(run_dir) or {}
    except (ValueError, OSError):  # being replaced: next time
        status = {}
    tail = MetricsLog(Path(run_dir) / "metrics.jsonl").tail(2)
    out = {"state": status.get("state", "starting"), "step": int(status.get("step") or 0)}
    out["steps"] = status.get("steps")
    if tail:
        last = tail[-1]
        out.update(step=max(out["step"], int(last["step"])), loss=last.get("loss"))
        out["samples_per_s"] = last.get("samples_per_s")
        if len(tail) == 2 and last["step"] > tail[0]["step"]:
            dt = last.get("wall_time_s", 0) - tail[0].get("wall_time_s", 0)
            out["s_per_step"] = dt / (last["step"] - tail[0]["step"]) if dt > 0 else None
        elif last.get("wall_time_s") and last["step"]:
            out["s_per_step"] = last["wall_time_s"] / last["step"]
    return out


def timed_rate(
    train_cfg: DictConfig, threads: int | None, warmup: int = 1, steps: int = 3
) -> tuple[float, int, float]:
    """(training FLOP/s of one run of ``train_cfg`` here, steps timed, seconds the timing took): the run
    trained in this process in a temporary directory for ``warmup`` + ``steps`` steps (fewer if the run is
    shorter), without probes, diagnostics or checkpoints, at ``threads`` torch threads; its rate is the
    step FLOPs (``vjepa.flops``) over the training time of the steps after the warm-up, as the trainer logs
    it (data loading included). Raises what the trainer raises (a ``ConfigError`` for missing data)."""
    import tempfile
    import time

    import torch

    from vjepa.flops import step_cost
    from vjepa.runfiles import MetricsLog
    from vjepa.trainer import Trainer

    t0 = time.perf_counter()
    total = min(int(train_cfg.steps), warmup + steps)
    warmup = min(warmup, total - 1)
    saved_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="vjepa-timing-") as tmp:
        cfg = OmegaConf.create(OmegaConf.to_container(train_cfg, resolve=True))
        with open_dict(cfg):
            cfg.run_dir = tmp
            cfg.threads = threads if threads is not None else cfg.get("threads")
            cfg.progress = False
            cfg.log_every = 1
            cfg.ckpt_every = int(cfg.steps) + 1  # a run shorter than the timing completes: one checkpoint
            cfg.probes = None
            if cfg.get("diagnostics") is not None:
                cfg.diagnostics.batch_size = 0
        try:
            Trainer(cfg).run(stop_after=total)
        finally:
            torch.set_num_threads(saved_threads)
        log = {r["step"]: r["wall_time_s"] for r in MetricsLog(Path(tmp) / "metrics.jsonl").read()}
    per_step = (log[total] - log.get(warmup, 0.0)) / (total - warmup)
    return step_cost(train_cfg).flops / per_step, total - warmup, time.perf_counter() - t0


# ---- schedulers ---------------------------------------------------------------------------------------
def scheduler_params(cluster, kind: str) -> dict:
    """submitit parameters of one run, named as in hydra-submitit-launcher's configs (kind: slurm | local)."""
    c = OmegaConf.to_container(cluster, resolve=True) if OmegaConf.is_config(cluster) else dict(cluster)
    if kind == "local":  # one process per run: the local executor gives no task environment for DDP
        return {"timeout_min": c["time_min"], "tasks_per_node": 1}
    return {
        "partition": c["partition"],
        "account": c["account"],
        "qos": c["qos"],
        "nodes": c["nodes"],
        "gpus_per_node": c["gpus_per_node"],
        "tasks_per_node": c["tasks_per_node"],
        "cpus_per_task": c["cpus_per_task"],
        "mem_gb": c["mem_gb"],
        "timeout_min": c["time_min"],
        "signal_delay_s": c["signal_delay_s"],
        "max_num_timeout": c["max_requeues"],
        "setup": list(c["setup"]),
        "additional_parameters": dict(c["additional_parameters"]),
    }


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def local_slots(threads, n_runs: int, max_parallel: int | None = None, gpus: int = 0) -> tuple[int, int]:
    """(runs at a time, torch threads per run) for local jobs: together they use the CPUs once. With GPUs,
    one run at a time unless ``max_parallel`` says otherwise: local jobs all see the same devices."""
    cpus = available_cpus()
    max_parallel = max_parallel or (1 if gpus else None)
    if threads in (None, "auto"):
        threads = max(1, cpus // max(1, min(n_runs, max_parallel or cpus, cpus)))
    return max(1, max_parallel or cpus // int(threads)), int(threads)


def started_threads(run_dir) -> int | None:
    """The torch threads a run that was started and stopped trained with (its ``config.yaml``), so that it
    resumes at the same count: on CPU the count changes a run's float rounding. None for a run not started
    or one that recorded no count."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    threads = OmegaConf.load(path).get("threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None


def measured_rate(runs: list[tuple[Path, float]], threads: int, device: str) -> tuple[float, int] | None:
    """Training FLOP/s of one run here: the median over ``runs`` ((run dir, FLOPs of the whole run)) that
    completed on this host at ``threads`` torch threads on ``device`` ("cpu" or "cuda"), as FLOPs / their
    training wall time (metrics.json, summed over resumes); with how many runs. None without such a run.
    Adopted runs (trained elsewhere) do not count."""
    from vjepa.runfiles import read_json, read_status

    rates = []
    for run_dir, flops in runs:
        status, metrics_path = read_status(run_dir), Path(run_dir) / "metrics.json"
        if not status or status.get("reused_from") or not metrics_path.exists():
            continue
        m = read_json(metrics_path)
        if (
            status.get("host") == socket.gethostname()
            and m.get("threads") == threads
            and str(m.get("device", "")).split(":")[0] == device
            and m.get("wall_time_s", 0) > 0
        ):
            rates.append(flops / m["wall_time_s"])
    return (statistics.median(rates), len(rates)) if rates else None


def completed_in_folders(run_dirs) -> list[tuple[Path, float]]:
    """(run dir, FLOPs of the whole run) of each completed run in the folders holding ``run_dirs`` (a sweep's
    output folder): the runs of this call's points and those of earlier calls that named other points, to
    time the launches by. Their FLOPs come from their config.yaml (``vjepa.flops.step_cost``); a config this
    code cannot cost (keys it no longer reads) is left out."""
    from omegaconf.errors import OmegaConfBaseException

    from vjepa.flops import step_cost

    out = []
    for parent in sorted({Path(d).parent for d in run_dirs}):
        for run_dir in sorted(parent.iterdir()) if parent.is_dir() else []:
            cfg_path = run_dir / "config.yaml"
            if not cfg_path.is_file() or run_state(run_dir, ask_scheduler=False)[0] != "completed":
                continue
            try:
                cfg = OmegaConf.load(cfg_path)
                out.append((run_dir, step_cost(cfg).flops * int(cfg.steps)))
            except (OmegaConfBaseException, KeyError, TypeError, ValueError):
                continue
    return out


def pool_wall_time(durations: list[float], slots: int) -> float:
    """Wall time of ``durations`` run in order, each starting on the first of ``slots`` to free up (the
    sweeper's local launches)."""
    free = [0.0] * max(1, slots)
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return max(free)


# ---- printing -----------------------------------------------------------------------------------------
def human(x: float) -> str:
    for unit, scale in (("Z", 1e21), ("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def compute_line(flops: float, peak_tflops: float, mfu: float) -> str:
    from vjepa.flops import gpu_hours

    sustained = peak_tflops * mfu
    return (
        f"{human(flops)} FLOP = {gpu_hours(flops, sustained):.4g} GPU-hours at {sustained:.0f} TFLOP/s "
        f"sustained per GPU (assumed: {peak_tflops:g} TFLOP/s dense bf16 peak x {mfu:.0%} MFU)"
    )
