#!/usr/bin/env python
"""Keep each table of a reproduction on one platform: the Python the reproduction scripts call
(``PYTHON=sweeps/pin_platform.py bash sweeps/reproduce_tiny.sh ...``), which runs a step only where the
table's runs were trained.

The same code rounds differently on another CPU instruction set or torch build (``vjepa.golden.platform``:
a tiny-preset run on an AVX512 CPU differs from the same run on AVX2 in the last bits from step 1, and no
setting of torch, MKL or oneDNN makes the one reproduce the other), so runs of one table trained on two
platforms pair across numerics. Machines that are lent for a few hours at a time are not all of one kind, so
a reproduction run across them keeps each sweep on the platform of its completed runs:

* ``pin_platform.py <sweep script> ARGS...`` (``sweeps/<name>.py``): runs the sweep unless its runs under
  ``${VJEPA_SWEEPS_OUT:-sweeps_out}/<name>/`` that hold training (completed, or stopped with a checkpoint the
  sweep would resume) record another platform than this machine's (or more than one): then it says so and
  exits 0, and the reproduction goes on to its next sweep. The completed runs of other sweeps that the sweep
  would adopt (the same point, trained once: its dry run names them) count as its own. A sweep with no such
  run starts here and is pinned to this platform from then on.
* ``pin_platform.py -m vjepa.evaluate run_dir=D ...`` (a random-init probe): runs unless D records another
  platform, so a run and its random-init baseline are probed where it was trained.
* anything else: runs unchanged.

"This machine's platform" is that of the device the runs train on here (``device=cuda`` or ``auto`` with a
GPU: the GPU's; else the CPU's). ``python -m sweeps.pin_platform --where SWEEPS_OUT`` lists each sweep's
platforms and whether it runs here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def here(argv: list[str]) -> str:
    """This machine's platform for the runs ``argv`` starts (their ``device=`` override, default auto)."""
    import torch

    from vjepa.golden import platform

    device = next((a.split("=", 1)[1] for a in argv if a.startswith("device=")), "auto")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return platform("cuda" if cuda else "cpu")


def trained_on(run: Path) -> str | None:
    """The platform a completed run's metrics.json records; None where it records none (or has none)."""
    from vjepa.runfiles import read_json

    metrics = Path(run) / "metrics.json"
    return read_json(metrics).get("platform") if metrics.is_file() else None


def recorded_platforms(folder: Path) -> dict[str, list[Path]]:
    """{platform: run directories} of the runs below ``folder`` that hold training: the completed ones (by
    metrics.json) and the stopped ones with a checkpoint (by status.json), which the sweep would resume here,
    one run then trained on two platforms."""
    from vjepa.runfiles import read_json, recorded_state

    found: dict[str, list[Path]] = {}
    for status in sorted(Path(folder).glob("preset=*/*/status.json")):
        run = status.parent
        if recorded_state(run)[0] == "completed":
            where = trained_on(run)
        elif (run / "checkpoints" / "last.pt").is_file():
            where = read_json(status).get("platform")
        else:
            continue
        found.setdefault(where or "unrecorded", []).append(run)
    return found


ADOPTED = re.compile(r"^\s*adopt\s.*\(reuse: same config as (?P<donor>.+)\)\s*$", re.M)


def planned_donors(argv: list[str]) -> list[Path]:
    """The completed runs of other sweeps that the sweep ``argv`` (script, args) would adopt: the donors its
    own dry run (``dry_run=true``, which launches nothing) names. An adopted run brings its platform into the
    table, so it pins the sweep as a run of its own would."""
    plan = subprocess.run([sys.executable, *argv, "dry_run=true"], capture_output=True, text=True)
    return [Path(m.group("donor")) for m in ADOPTED.finditer(plan.stdout)]


def with_donors(platforms: dict[str, list[Path]], donors: list[Path]) -> dict[str, list[Path]]:
    """``platforms`` with each donor run under its platform (metrics.json's)."""
    merged = {p: list(runs) for p, runs in platforms.items()}
    for donor in donors:
        merged.setdefault(trained_on(donor) or "unrecorded", []).append(donor)
    return merged


def blocked(platforms: dict[str, list[Path]], where: str) -> str | None:
    """Why a table whose runs record ``platforms`` may not run on ``where``; None if it may."""
    others = sorted(p for p in platforms if p != where)
    if not others:
        return None
    counts = ", ".join(f"{len(platforms[p])} on {p}" for p in sorted(platforms))
    return f"its completed or checkpointed runs were trained elsewhere ({counts}); this machine is {where}"


def _sweeps_out() -> Path:
    return Path(os.environ.get("VJEPA_SWEEPS_OUT", "sweeps_out"))


def reason_to_skip(argv: list[str]) -> str | None:
    """Why the step ``argv`` (the arguments after the Python) does not run here; None if it does."""
    if argv and argv[0].endswith(".py") and Path(argv[0]).parent.name == "sweeps":
        name, where = Path(argv[0]).stem, here(argv[1:])
        platforms = recorded_platforms(_sweeps_out() / name)
        why = blocked(platforms, where)  # the sweep's own runs first: the dry run for donors takes seconds
        if why is None:
            why = blocked(with_donors(platforms, planned_donors(argv)), where)
        return f"sweep {name}: {why}" if why else None
    if argv[:2] == ["-m", "vjepa.evaluate"]:
        run = next((Path(a.split("=", 1)[1]) for a in argv if a.startswith("run_dir=")), None)
        recorded = trained_on(run) if run is not None else None
        where = here(argv[2:])
        if recorded and recorded != where:
            return f"random-init probe of {run}: trained on {recorded}, this machine is {where}"
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["--where"]:
        root = Path(argv[1]) if len(argv) > 1 else _sweeps_out()
        where = here([])
        print(f"this machine: {where}")
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            platforms = recorded_platforms(folder)
            counts = ", ".join(f"{len(runs)} on {p}" for p, runs in sorted(platforms.items())) or "none"
            print(
                f"  {folder.name}: completed or checkpointed {counts}: "
                f"{'skipped' if blocked(platforms, where) else 'runs'} here"
            )
        return 0
    why = reason_to_skip(argv)
    if why:
        print(f"[pin] skipped {why}", flush=True)
        return 0
    os.execv(sys.executable, [sys.executable, *argv])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
