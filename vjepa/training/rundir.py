"""The run directory's identity and state: what a restart must match, config.yaml and status.json.

A run directory holds one experiment. A process that trains into it must be that experiment: its config
may differ from config.yaml only in the keys ``vjepa.run_identity.resume_view`` leaves out (where it runs,
how fast, what it probes and logs), and it must continue a checkpoint in the arithmetic the run trained in
(``precision``). Otherwise it is refused with a ``ConfigError`` before anything is written. A refusal on
any one process of a distributed run is raised on every process (``on_every_rank``).

status.json (``vjepa.runfiles.write_status``) is written by the main process only; each write names the
code the run trains with, its numerics id (``+compiled2`` with compiled blocks) and platform (joined by ">"
over the parts of a run resumed by other numerics, compiled or not, or elsewhere) and its precision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from vjepa.config_check import ConfigError
from vjepa.distributed import barrier, errors_across_ranks
from vjepa.run_identity import config_differences, resume_view
from vjepa.runfiles import atomic_write_text, code_version, read_status, write_status


def on_every_rank(check: Callable[[], None], dist) -> None:
    """Run ``check``; if it raised ``ConfigError`` on any rank, raise one on every rank, naming the ranks and
    their errors. A rank that refuses alone (a data path missing on its node) would otherwise leave the
    others waiting at the next collective until the backend's timeout."""
    error = None
    try:
        check()
    except ConfigError as exc:
        if dist.world == 1:
            raise
        error = exc
    failed = errors_across_ranks(None if error is None else str(error), dist)
    if failed:
        raise ConfigError(
            "refused on rank(s) " + ", ".join(str(rank) for rank, _ in failed) + " of "
            f"{dist.world}:\n" + "\n".join(f"  rank {rank}: {msg}" for rank, msg in failed)
        ) from error


class RunDir:
    """The run directory ``cfg.run_dir`` as this process trains into it (refusals, config.yaml, status.json)."""

    def __init__(self, cfg, dist, device, precision: str):
        self.cfg, self.dist, self.device, self.precision = cfg, dist, device, precision
        self.path = Path(cfg.run_dir)
        self.ckpt_path = self.path / "checkpoints" / "last.pt"
        self.is_main = dist.is_main
        self.status_at_start: dict | None = None  # status.json as this process found it (``read_status``)
        self.resumed_from: int | None = None  # the checkpoint step this process resumed from

    def read_status(self) -> dict | None:
        self.status_at_start = read_status(self.path)
        return self.status_at_start

    def completed(self) -> bool:
        status = self.status_at_start
        return bool(status and status["state"] == "completed" and (self.path / "metrics.json").exists())

    def refuse_another_run(self) -> None:
        """Refuse a config that differs from config.yaml's in a key the run's identity holds."""
        cfg_path = self.path / "config.yaml"
        if not cfg_path.exists():
            return
        old = OmegaConf.load(cfg_path)
        diffs = [
            f"{key}: {a!r} (on disk) vs {b!r} (now)"
            for key, a, b in config_differences(resume_view(old), resume_view(self.cfg), missing=None)
        ]
        if diffs:
            raise ConfigError(
                f"run_dir={str(self.path)!r} already holds a run with a different configuration:\n  - "
                + "\n  - ".join(diffs)
                + "\nChoose another run_dir, or delete that directory to start over."
            )

    def check_precision(self, status: dict | None) -> None:
        """Refuse to resume a run in another arithmetic than it trained in (precision=auto is fp32 on CPU and
        bf16 on CUDA, so moving a run between devices would silently change it)."""
        saved = (status or {}).get("precision")
        if saved and saved != self.precision and self.ckpt_path.exists():
            raise ConfigError(
                f"run_dir={str(self.path)!r} trained in {saved} until step {status.get('step')}; this process "
                f"would continue it in {self.precision} (precision=auto is fp32 on CPU, bf16 on CUDA). Resume it "
                f"on {'CPU (device=cpu)' if saved == 'fp32' else 'a CUDA device (device=cuda)'}, or use another "
                "run_dir."
            )

    def write_config(self) -> None:
        """config.yaml of a new run (the resolved config); every rank waits for it."""
        cfg_path = self.path / "config.yaml"
        if not cfg_path.exists() and self.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cfg_path, OmegaConf.to_yaml(self.cfg, resolve=True))
        barrier(self.dist)

    def status(self, state: str, **fields) -> None:
        if self.is_main:
            fields = {
                "code_version": self.code_version,
                "numerics": self.numerics,
                "platform": self.platform,
                "precision": self.precision,
                **fields,
            }
            write_status(self.path, state, **fields)

    @functools.cached_property
    def code_version(self) -> str:
        return code_version()

    def _since_start(self, key: str, now: str | None) -> str | None:
        """``now``, or for a run resumed from a part recorded with another value of ``key``, the values of
        its parts in order joined by ">" ("?" for a part that did not record it), so a run resumed by other
        numerics or on another platform never counts as a run of either."""
        status = self.status_at_start if self.resumed_from else None
        if not status:
            return now
        before = status.get(key) or "?"
        return before if before.rsplit(">", 1)[-1] == now else f"{before}>{now}"

    @functools.cached_property
    def numerics(self) -> str | None:
        """The numerics id of the code this run trains with, ``+compiled...`` with compiled blocks
        (``vjepa.golden.run_numerics``)."""
        from vjepa import schema
        from vjepa.golden import run_numerics

        return self._since_start("numerics", run_numerics(schema.compile_mode(self.cfg)))

    @functools.cached_property
    def platform(self) -> str:
        """Where this run trains, as far as it changes rounding (``vjepa.golden.platform``)."""
        from vjepa.golden import platform

        return self._since_start("platform", platform(self.device))
