"""Shared pieces of the file-backed sources: errors, data paths, the cache folder, epoch order, bad files.

Errors: a missing root or file raises ``DataNotFoundError`` saying which setting to change
(``data.root=...``, ``data.image.path=...``); an unreadable file raises ``DataFileError`` naming it.
Sample order: position ``p = step * batch_size + i`` of the stream of samples is index
``perm_e[p % n]`` with ``e = p // n`` and ``perm_e`` a permutation seeded by (seed, e), so every sample is
seen exactly once per epoch and the index of a position depends on nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from vjepa.data import step_generator

ON_ERROR = ("raise", "skip")


class DataNotFoundError(FileNotFoundError):
    """A data root, file or folder named by the configuration does not exist."""


class DataFileError(RuntimeError):
    """A data file exists but cannot be decoded."""


def require_path(root: Path | None, rel: str, what: str, setting: str = "data.root") -> Path:
    """``root / rel``, or one error telling the user which setting to change."""
    if root is None:
        raise DataNotFoundError(
            f"{what} needs {rel} under the data root, but data.root is not set and ../shared/data does not "
            f"exist beside the repository: set {setting}=/path/to/data (the folder that holds {rel})"
        )
    path = Path(root).expanduser() / rel
    if not path.exists():
        raise DataNotFoundError(
            f"{what}: {path} does not exist; set {setting}=/path/to/data (the folder that holds {rel}), "
            f"now {setting}={root}"
        )
    return path


def user_path(value, root: Path | None, setting: str) -> Path:
    """A path from the config: absolute, ``~``-relative, or relative to the data root (else to the cwd)."""
    if not value:
        raise DataNotFoundError(f"{setting} is not set: set {setting}=/path/to/files")
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root).expanduser() / path
    if not path.exists():
        raise DataNotFoundError(
            f"{setting}={value}: {path} does not exist; set {setting}=... to an existing path"
        )
    return path


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where decoded data sets are cached: ``override``, else ``$VJEPA_CACHE``, else ``~/.cache/vjepa``."""
    path = override or os.environ.get("VJEPA_CACHE") or Path.home() / ".cache" / "vjepa"
    return Path(path).expanduser()


def check_on_error(value: str, setting: str) -> str:
    if value not in ON_ERROR:
        raise ValueError(f"{setting} must be one of {ON_ERROR}, got {value!r}")
    return value


class EpochOrder:
    """Index of sample position ``p``: a fresh permutation of ``range(n)`` per epoch (see module doc)."""

    def __init__(self, n: int, seed: int, stream: int):
        if n < 1:
            raise ValueError("EpochOrder needs at least one sample")
        self.n, self.seed, self.stream = n, seed, stream
        self._perms: dict[int, torch.Tensor] = {}

    def perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) >= 2:  # positions only move forward within a process
                self._perms.pop(min(self._perms))
            self._perms[epoch] = torch.randperm(
                self.n, generator=step_generator(self.seed, epoch, self.stream)
            )
        return self._perms[epoch]

    def index(self, pos: int) -> int:
        return int(self.perm(pos // self.n)[pos % self.n])

    def positions(self, step: int, batch_size: int, rows: range | None = None) -> range:
        """Stream positions of the samples of step ``step``'s batch (only its ``rows`` if given)."""
        pos = range(step * batch_size, (step + 1) * batch_size)
        return pos if rows is None else pos[rows.start : rows.stop]


def load_batch(
    order: EpochOrder,
    positions: range,
    load: Callable[[int, int], torch.Tensor],
    on_error: str,
    max_skips: int,
    setting: str,
) -> tuple[list[torch.Tensor], int]:
    """``load(index, j)`` for the samples at ``positions`` of the epoch order (``j``: 0, 1, ...), applying
    the ``on_error`` policy.

    With ``skip``, a sample whose file raises ``DataFileError`` is replaced by the sample at the next
    position of the epoch order (deterministic), and counted; more than ``max_skips`` unreadable files in
    a row raise one error naming them. Returns (samples, number of skipped files).
    """
    out, skipped = [], 0
    for j, pos in enumerate(positions):
        failures = []
        while True:
            try:
                out.append(load(order.index(pos + len(failures)), j))
                break
            except DataFileError as exc:
                if on_error == "raise":
                    raise
                failures.append(str(exc))
                if len(failures) > max_skips:
                    raise DataFileError(
                        f"{setting}=skip gave up after {len(failures)} unreadable samples in a row "
                        f"(raise {setting.rsplit('.', 1)[0]}.max_skips to try more):\n  "
                        + "\n  ".join(dict.fromkeys(failures))
                    ) from None
        skipped += len(failures)
    return out, skipped


class BadFiles:
    """Remembers, per process, the files that failed to decode, so a skip does not re-decode them."""

    def __init__(self):
        self.errors: dict[str, str] = {}

    def call(self, path: str, kind: str, fn: Callable):
        if path in self.errors:
            raise DataFileError(self.errors[path])
        try:
            return fn()
        except DataFileError as exc:
            self.errors[path] = str(exc)
            raise
        except Exception as exc:  # decoders raise many types; the user needs the file name
            self.errors[path] = f"cannot read {kind} file {path}: {type(exc).__name__}: {exc}"
            raise DataFileError(self.errors[path]) from None
