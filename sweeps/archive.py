"""Completed runs carried from one machine to the next without their checkpoints, so a reproduction that runs
a few hours at a time on machines that do not keep their disks resumes where it stopped.

``python -m sweeps.archive save <sweeps_out> <folder>`` writes ``<folder>/runs-<UTC time>.tar.gz`` holding the
completed run directories under ``<sweeps_out>/<sweep>/preset=<p>/`` that no archive in ``<folder>`` holds
yet: every file but ``checkpoints/``, ``probe_cache/``, ``.submitit/`` and logs (a few hundred kB a run,
mostly ``metrics.jsonl``). ``python -m sweeps.archive restore <folder> <sweeps_out>`` unpacks every archive of
``<folder>`` into ``<sweeps_out>``, leaving a run directory that already exists as it is.

A restored run is a completed run to the sweeps (skipped; adopted by another sweep's identical point), to
``vjepa.evaluate baseline=only`` (the random-init probe needs only its config) and to ``analysis.collect``
(its metrics, curves and identity); what it lacks is its weights, so it cannot be probed again. Runs that
did not complete are never archived: only their checkpoint could resume them.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import time
from pathlib import Path

LEFT_OUT = ("checkpoints", "probe_cache", ".submitit")  # directories not carried
LEFT_OUT_SUFFIXES = (".log", ".pt")
# refuse absolute paths, links out of the folder and the like where this Python has tarfile's filters
SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def completed_runs(sweeps_out) -> list[Path]:
    """Completed run directories under ``<sweeps_out>/<sweep>/preset=<p>/``, relative to ``sweeps_out``."""
    from sweeps.common import run_state

    root = Path(sweeps_out)
    runs = sorted(p.parent for p in root.glob("*/preset=*/*/status.json"))
    return [r.relative_to(root) for r in runs if run_state(r, ask_scheduler=False)[0] == "completed"]


def archived_runs(folder) -> set[Path]:
    """The run directories (relative paths) the archives in ``folder`` hold."""
    held = set()
    for archive in sorted(Path(folder).glob("runs-*.tar.gz")):
        with tarfile.open(archive) as tar:
            held |= {Path(m.name).parent for m in tar.getmembers() if Path(m.name).name == "status.json"}
    return held


def _carried(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    if any(p in LEFT_OUT for p in parts) or info.name.endswith(LEFT_OUT_SUFFIXES):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def save(sweeps_out, folder) -> Path | None:
    """Archive the completed runs not yet archived; the archive written, or None where there were none."""
    root, folder = Path(sweeps_out), Path(folder)
    new = [r for r in completed_runs(root) if r not in archived_runs(folder)]
    if not new:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"runs-{stamp}.tar.gz"
    k = 1
    while path.exists():  # two saves in one second: never overwrite an archive
        k += 1
        path = folder / f"runs-{stamp}-{k}.tar.gz"
    tmp = path.with_name(f".{path.name}.part")
    with tarfile.open(tmp, "w:gz") as tar:
        for run in new:
            tar.add(root / run, arcname=str(run), filter=_carried)
    tmp.replace(path)  # a stopped save leaves no archive that looks whole
    return path


def restore(folder, sweeps_out) -> list[Path]:
    """Unpack every archive of ``folder`` into ``sweeps_out``; returns the run directories written (those
    that did not exist)."""
    root = Path(sweeps_out)
    written = []
    for archive in sorted(Path(folder).glob("runs-*.tar.gz")):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            runs = {Path(m.name).parent for m in members if Path(m.name).name == "status.json"}
            fresh = {r for r in runs if not (root / r).exists()}
            for m in members:
                if any(Path(m.name).is_relative_to(r) for r in fresh):
                    tar.extract(m, root, **SAFE)
            written += sorted(fresh)
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sweeps.archive", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="archive the completed runs not yet archived")
    s.add_argument("sweeps_out", type=Path)
    s.add_argument("folder", type=Path)
    r = sub.add_parser("restore", help="unpack every archive into the sweeps' output folder")
    r.add_argument("folder", type=Path)
    r.add_argument("sweeps_out", type=Path)
    args = p.parse_args(argv)
    if args.command == "save":
        if not args.sweeps_out.is_dir():
            sys.exit(f"{args.sweeps_out}: no such folder")
        path = save(args.sweeps_out, args.folder)
        print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)" if path else "no completed run to archive")
    else:
        if not args.folder.is_dir():
            sys.exit(f"{args.folder}: no such folder")
        runs = restore(args.folder, args.sweeps_out)
        print(f"restored {len(runs)} run(s) into {args.sweeps_out}")


if __name__ == "__main__":
    main()
