import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import TINY_TEST
from vjepa.preemption import stop_on_signal
from vjepa.runfiles import load_checkpoint, read_json, read_status
from vjepa.trainer import Interrupted, Trainer, train

VOLATILE = {"wall_time_s", "samples_per_s", "tokens_per_s", "code_version"}  # timings, provenance


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def _signal_during(trainer, at_step: int) -> None:
    """Deliver SIGUSR2 to this process while ``trainer`` runs step ``at_step`` (0-based)."""
    step = trainer.train_step

    def train_step(s, batch, **kw):
        if s == at_step:
            os.kill(os.getpid(), signal.SIGUSR2)
        return step(s, batch, **kw)

    trainer.train_step = train_step


def test_signal_checkpoints_at_the_step_boundary_then_hands_over_to_the_previous_handler(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "steps=6", "log_every=1", "ckpt_every=100")
    calls = []

    def previous(signum, frame):  # stands in for submitit's checkpoint-and-requeue
        calls.append((signum, load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.pt")["step"]))

    old = signal.signal(signal.SIGUSR2, previous)
    try:
        trainer = Trainer(cfg)
        _signal_during(trainer, at_step=1)
        with pytest.raises(Interrupted), stop_on_signal(trainer.request_stop):
            trainer.run()
        assert calls == [(signal.SIGUSR2, 2)]  # called once, after the checkpoint of the step in flight
        assert signal.getsignal(signal.SIGUSR2) is previous
        assert read_status(cfg.run_dir)["state"] == "interrupted"
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert train(cfg)["steps"] == 6  # resumes from that checkpoint


def test_signal_in_the_last_step_lets_the_run_complete_without_handing_over(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1")
    calls = []
    old = signal.signal(signal.SIGUSR2, lambda *a: calls.append(a))
    try:
        trainer = Trainer(cfg)
        _signal_during(trainer, at_step=1)
        with stop_on_signal(trainer.request_stop):
            assert trainer.run()["steps"] == 2
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert calls == [] and read_status(cfg.run_dir)["state"] == "completed"


@pytest.mark.slurm
def test_preempted_slurm_job_is_requeued_and_resumes_to_the_uninterrupted_result(slurm_cluster, tmp_path):
    from sweeps.common import ROOT

    env = {**slurm_cluster.environ(), "VJEPA_SWEEPS_OUT": str(tmp_path)}
    cmd = [
        sys.executable,
        str(ROOT / "sweeps" / "mask_ratio.py"),
        "preset=tiny",
        *TINY_TEST,
        "steps=30",
        "ckpt_every=1",
        "log_every=1",
        "seed=0",
        "mask.ratio=0.75",
        "cluster=local",
    ]
    driver = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(str(tmp_path / "mask_ratio/preset=tiny/*/checkpoints/last.pt")):
            assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read()
            time.sleep(0.1)
        run = Path(glob.glob(str(tmp_path / "mask_ratio/preset=tiny/batch_size=*"))[0])
        job = read_json(run / "job.json")["job_id"]
        # what SLURM does before a time limit or a preemption (--signal=USR2@...), as submitit's tests do
        subprocess.run(["scancel", "--signal=USR2", job], env=slurm_cluster.environ(), check=True)
        while not {"Restarts=1", "JobState=PENDING"} <= set(_job_record(slurm_cluster, job).split()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the requeued job starts again once its revoked credential has expired (the test cluster's
        # cred_expire; forcing StartTime=now sooner makes slurmd refuse it: "Job credential revoked")
        out, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out
    assert "1 completed, 0 skipped, 0 adopted, 0 failed" in out
    log = "".join(Path(p).read_text() for p in glob.glob(str(run.parent / ".submitit" / "*" / "*_log.err")))
    stopped = int(re.search(r"checkpoint written at step (\d+)", log).group(1))
    resumed = int(re.search(r"resuming .* from step (\d+)", log).group(1))
    assert 0 < stopped == resumed < 30

    from omegaconf import OmegaConf

    reference = OmegaConf.load(run / "config.yaml")
    reference.run_dir = str(tmp_path / "uninterrupted")
    train(reference)
    # log_every=1: every logged window is one step, so the logs match exactly across the stop
    logs = [(d / "metrics.jsonl").read_text().splitlines() for d in (run, tmp_path / "uninterrupted")]
    assert _stable(map(json.loads, logs[0])) == _stable(map(json.loads, logs[1]))
    final = [read_json(d / "metrics.json") for d in (run, tmp_path / "uninterrupted")]
    assert _stable(final[:1]) == _stable(final[1:])


def _job_record(cluster, job: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", "-o", job], env=cluster.environ(), capture_output=True, text=True
    ).stdout


def _fake_probes(monkeypatch, signal_first: bool, calls: list) -> None:
    """Stand in for ``vjepa.probes.run_probes``: optionally deliver SIGUSR2 to this process first (the
    scheduler's notice arriving while the probes run, here inside an ``except Exception`` as data loaders
    have); records whether the probes got to their end."""
    import vjepa.probes

    def run_probes(encoder, *args, **kwargs):
        calls.append("started")
        try:
            if signal_first:
                os.kill(os.getpid(), signal.SIGUSR2)
        except Exception:
            calls.append("stop swallowed")
        calls.append("finished")
        return {"probe/shapes_seg/miou": 0.5}

    monkeypatch.setattr(vjepa.probes, "run_probes", run_probes)


def _no_training(trainer) -> None:
    def train_step(step, batch, **kw):
        raise AssertionError(f"step {step} trained again")

    trainer.train_step = train_step


@contextmanager
def _handovers():
    """SIGUSR2 deliveries recorded (a list) instead of handled: submitit's handler would requeue there."""
    received = []
    old = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGUSR2, old)


def _run_to_the_handover(trainer):
    with (
        pytest.raises(Interrupted, match="stop requested at the end-of-run probes"),
        stop_on_signal(trainer.request_stop),
    ):
        trainer.run()


def test_signal_during_the_probes_hands_over_and_the_rerun_goes_straight_to_the_probes(
    compose_cfg, monkeypatch
):
    cfg = compose_cfg(*TINY_TEST, "steps=3", "log_every=1", "probes=fast")
    run_dir = Path(cfg.run_dir)
    probes = []
    with _handovers() as handed_over:
        _fake_probes(monkeypatch, signal_first=True, calls=probes)
        _run_to_the_handover(Trainer(cfg))
    assert probes == ["started"]  # stopped at once, not at the probes' end
    assert handed_over == [signal.SIGUSR2]  # submitit's handler would requeue the job here
    status = read_status(run_dir)
    assert status["state"] == "interrupted" and status["step"] == 3
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 3
    log = (run_dir / "metrics.jsonl").read_text()

    probes.clear()
    _fake_probes(monkeypatch, signal_first=False, calls=probes)
    trainer = Trainer(cfg)
    _no_training(trainer)
    final = trainer.run()
    assert probes == ["started", "finished"]
    assert final["probe/shapes_seg/miou"] == 0.5 and final["probe/step"] == 3
    assert read_json(run_dir / "metrics.json") == final
    assert read_status(run_dir)["state"] == "completed"
    assert (run_dir / "metrics.jsonl").read_text() == log


def test_signal_in_the_last_step_of_a_run_with_probes_hands_over_before_they_start(compose_cfg, monkeypatch):
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1", "probes=fast")
    probes = []
    with _handovers() as handed_over:
        _fake_probes(monkeypatch, signal_first=False, calls=probes)
        trainer = Trainer(cfg)
        _signal_during(trainer, at_step=1)
        _run_to_the_handover(trainer)
    assert probes == [] and handed_over == [signal.SIGUSR2]
    status = read_status(cfg.run_dir)
    assert status["state"] == "interrupted" and status["step"] == 2


def test_probes_that_got_to_their_end_are_kept_despite_a_late_stop_request(compose_cfg, monkeypatch):
    """A stop request the probes could not be aborted by (here: set while they finish, as a signal inside a
    finaliser leaves it) keeps their results and completes the run instead of throwing them away."""
    import vjepa.probes

    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1", "probes=fast")
    trainer = Trainer(cfg)

    def run_probes(encoder, *args, **kwargs):
        trainer._stop_requested = True  # what request_stop leaves when its raise is swallowed
        return {"probe/shapes_seg/miou": 0.5}

    monkeypatch.setattr(vjepa.probes, "run_probes", run_probes)
    final = trainer.run()
    assert final["probe/shapes_seg/miou"] == 0.5
    assert read_status(cfg.run_dir)["state"] == "completed"


def test_a_stop_request_at_any_line_of_the_probe_step_hands_over_or_keeps_the_results(
    compose_cfg, monkeypatch
):
    """A signal is handled between any two lines, including those that clean up after the probes (a
    ``finally``). Wherever ``request_stop`` runs in ``Trainer._probe``, the result is a hand-over
    (``Interrupted``) or the kept results, never the internal stop exception escaping as a failure."""
    import dis

    import vjepa.probes

    trainer = Trainer(compose_cfg(*TINY_TEST, "steps=1", "probes=fast"))
    trainer.build()
    monkeypatch.setattr(vjepa.probes, "run_probes", lambda *a, **k: {"probe/shapes_seg/miou": 0.5})
    code = Trainer._probe.__code__
    lines = sorted({line for _, _, line in code.co_lines() if line is not None} - {code.co_firstlineno})
    assert len(lines) > 10 and any(i.opname == "RERAISE" for i in dis.get_instructions(code))  # has a finally
    outcomes = {}
    for target in lines:
        trainer._stop_requested = False
        fired = []

        def local(frame, event, arg, target=target, fired=fired):
            if event == "line" and frame.f_lineno == target and not fired:
                fired.append(target)
                trainer.request_stop()  # what the signal handler calls; may raise into this frame
            return local

        def calls(frame, event, arg):
            return local if event == "call" and frame.f_code is code else None

        sys.settrace(calls)
        try:
            outcomes[target] = trainer._probe(trainer.cfg.probes)["probe/shapes_seg/miou"]
        except Interrupted:
            outcomes[target] = "handed over"
        finally:
            sys.settrace(None)
        assert not trainer._stop_at_once, f"line {target}: the probes' stop flag stayed set"
    assert set(outcomes.values()) == {"handed over", 0.5}, outcomes  # early lines hand over, late ones keep
