"""The run directory: atomic writes, status, metrics and checkpoints.

Layout of a run directory::

    config.yaml        resolved configuration (written once; a restart must match it)
    overrides.yaml     the command-line overrides that named the run
    status.json        {"state": running|interrupted|completed|failed, "step", "checkpoint_step", "updated",
                       "traceback"?, ...}: while running, "step" is the last logged step (rewritten at every
                       log step) and "checkpoint_step" the step a rerun resumes from
    metrics.jsonl      one JSON object per logged step
    metrics.json       final metrics (written when the run completes)
    checkpoints/last.pt  latest checkpoint (tensors and plain types only: loads with weights_only=True)

``recorded_state(run_dir)`` says what state these files record (completed, no_metrics, running, ...).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import torch

STATES = ("running", "interrupted", "completed", "failed")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp creates 0600; give it the mode a plain open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def code_version() -> str:
    """``git describe`` of the checkout this package runs from (``-dirty`` if modified), else the package version."""
    import subprocess

    from vjepa import __version__

    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"vjepa-{__version__}"


def write_status(run_dir: Path, state: str, **fields) -> None:
    assert state in STATES, state
    status = {
        "state": state,
        "updated": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **fields,
    }
    write_json(Path(run_dir) / "status.json", status)


def read_status(run_dir: Path) -> dict | None:
    p = Path(run_dir) / "status.json"
    return read_json(p) if p.exists() else None


def recorded_state(run_dir: Path) -> tuple[str, dict]:
    """(state, status) of a run directory as its files record it; ``status`` is status.json's content, {}
    without one. The state is one of:

    * ``completed``: status.json says completed and metrics.json exists (the only state with final metrics);
    * ``no_metrics``: status.json says completed but metrics.json is missing (lost or deleted): not done, a
      resume from the final checkpoint writes it;
    * ``running`` | ``interrupted`` | ``failed``: status.json's state. ``running`` is what the last process
      wrote before it ended or while it still runs: whether a job still works on the directory is the
      scheduler's to say, not the files';
    * ``new``: no status.json (nothing trained yet, or only a job's residue).

    Sweeps (which runs to launch) and analysis (which rows carry metrics) both decide by this."""
    status = read_status(run_dir) or {}
    if not status:
        return "new", status
    if status["state"] == "completed" and not (Path(run_dir) / "metrics.json").exists():
        return "no_metrics", status
    return status["state"], status


def save_checkpoint(path: Path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


class MetricsLog:
    """Append-only metrics.jsonl, one JSON object per line.

    A kill or node failure during ``append`` can leave the last line cut short (no newline): reading drops
    such a torn final line (the resumed run writes it again, after its checkpoint), while any other
    unreadable line is corruption and raises ``ValueError`` naming the file and line. ``truncate_after(step)``
    drops the lines a resumed run will write again, rewriting the file atomically. ``sync()`` puts the
    appended lines on disk; the trainer calls it before each checkpoint, so a checkpoint that survives a
    power loss never resumes past lines that did not (the resumed run would not write them again).
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [line for line, record in self._lines() if record["step"] <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def sync(self) -> None:
        if self.path.exists():
            with open(self.path, "rb") as f:
                os.fsync(f.fileno())

    def read(self) -> list[dict]:
        return [record for _, record in self._lines()]

    def tail(self, n: int = 2, max_bytes: int = 1 << 16) -> list[dict]:
        """The last ``n`` complete records (fewer if the file holds fewer), reading at most the last
        ``max_bytes`` of the file: what a progress display polls while the run appends. A torn or unreadable
        line is left out (the file is being written; ``read`` is the check)."""
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(0, size - max_bytes)
                f.seek(start)
                chunk = f.read(size - start)
        except OSError:
            return []
        lines = chunk.decode(errors="replace").split("\n")
        lines = lines[1 if start else 0 : -1]  # a line cut by the window's start; the unfinished last one
        out = []
        for line in reversed(lines):
            if len(out) == n:
                break
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out[::-1]

    def _lines(self) -> list[tuple[str, dict]]:
        """(line, record) of every complete line; a torn final line is left out."""
        if not self.path.exists():
            return []
        text = self.path.read_bytes().decode(errors="replace")  # a torn tail may hold any bytes
        lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        out = []
        torn_tail = not text.endswith("\n")  # append writes whole lines: only an unfinished one is torn
        for i, (n, line) in enumerate(lines):
            try:
                out.append((line, json.loads(line)))
            except json.JSONDecodeError as exc:
                if torn_tail and i == len(lines) - 1:
                    break  # torn by a kill mid-append
                raise ValueError(f"{self.path}:{n}: unreadable metrics line ({exc}): {line[:80]!r}") from exc
        return out
