"""Completed runs carried from one machine to the next without their checkpoints, so a reproduction that runs
a few hours at a time on machines that do not keep their disks resumes where it stopped.

``python -m sweeps.archive save <sweeps_out> <folder>`` writes ``<folder>/runs-<UTC time>.tar.gz`` holding the
completed run directories under ``<sweeps_out>/<sweep>/preset=<p>/`` that no archive in ``<folder>`` holds
yet: every file but ``checkpoints/``, ``probe_cache/``, ``.submitit/`` and logs (a few hundred kB a run,
mostly ``metrics.jsonl``). ``python -m sweeps.archive restore <folder> <sweeps_out>`` unpacks every archive of
``<folder>`` into ``<sweeps_out>``, leaving a run directory that already exists as it is.

A run is held by its directory and the platform its ``metrics.json`` records (``vjepa.golden.platform``: the same
code rounds differently on another instruction set). The same point trained again on another platform, its
table moved there, is a new run to ``save``. Where the archives hold one directory from two platforms,
``restore`` needs ``--platform`` (only that platform's runs are unpacked) and refuses before writing anything
without it; ``python -m sweeps.archive list <folder>`` counts the runs per platform.

A restored run is a completed run to the sweeps (skipped; adopted by another sweep's identical point), to
``vjepa.evaluate baseline=only`` (the random-init probe needs only its config) and to ``analysis.collect``
(its metrics, curves and identity); what it lacks is its weights, so it cannot be probed again. Runs that
did not complete are never archived: only their checkpoint could resume them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

from sweeps.pin_platform import trained_on

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


def _held(tar: tarfile.TarFile) -> dict[Path, str | None]:
    """{run directory: its recorded platform} of one archive."""
    members = tar.getmembers()
    runs = {Path(m.name).parent for m in members if Path(m.name).name == "status.json"}
    platform: dict[Path, str | None] = dict.fromkeys(runs)
    for m in members:
        if Path(m.name).name == "metrics.json" and Path(m.name).parent in platform:
            platform[Path(m.name).parent] = json.load(tar.extractfile(m)).get("platform")
    return platform


def archived(folder) -> set[tuple[Path, str | None]]:
    """The runs the archives in ``folder`` hold: (run directory relative to the sweeps' folder, platform)."""
    held = set()
    for archive in sorted(Path(folder).glob("runs-*.tar.gz")):
        with tarfile.open(archive) as tar:
            held |= set(_held(tar).items())
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
    held = archived(folder)
    new = [r for r in completed_runs(root) if (r, trained_on(root / r)) not in held]
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


def restore(folder, sweeps_out, platform: str | None = None) -> list[Path]:
    """Unpack every archive of ``folder`` into ``sweeps_out`` (``platform``: only the runs trained there);
    returns the run directories written (those that did not exist). Raises ValueError, before writing
    anything, where ``platform`` is None and a directory is held from two platforms, or where no run was
    trained on ``platform``."""
    held = archived(folder)
    platforms = Counter(p for _, p in held)
    if platform is not None and platform not in platforms:
        raise ValueError(
            f"no archived run was trained on {platform!r}; the archives hold {_counts(platforms)}"
        )
    if platform is None:
        seen: dict[Path, set] = {}
        for run, p in held:
            seen.setdefault(run, set()).add(p)
        twice = sorted(str(r) for r, ps in seen.items() if len(ps) > 1)
        if twice:
            raise ValueError(
                f"{len(twice)} run directories are archived from two platforms (e.g. {twice[0]}): say which "
                f"to restore with --platform; the archives hold {_counts(platforms)}"
            )
    root = Path(sweeps_out)
    written = []
    for archive in sorted(Path(folder).glob("runs-*.tar.gz")):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            runs = {r for r, p in _held(tar).items() if platform is None or p == platform}
            fresh = {r for r in runs if not (root / r).exists()}
            for m in members:
                if any(Path(m.name).is_relative_to(r) for r in fresh):
                    tar.extract(m, root, **SAFE)
            written += sorted(fresh)
    return written


def _counts(platforms: Counter) -> str:
    return "; ".join(
        f"{n} run(s) from {p or 'no recorded platform'}" for p, n in sorted(platforms.items(), key=str)
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sweeps.archive", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="archive the completed runs not yet archived")
    s.add_argument("sweeps_out", type=Path)
    s.add_argument("folder", type=Path)
    r = sub.add_parser("restore", help="unpack every archive into the sweeps' output folder")
    r.add_argument("folder", type=Path)
    r.add_argument("sweeps_out", type=Path)
    r.add_argument("--platform", help="only the runs trained on this platform (as metrics.json records it)")
    lst = sub.add_parser("list", help="count the archived runs per platform")
    lst.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    if args.command == "save":
        if not args.sweeps_out.is_dir():
            sys.exit(f"{args.sweeps_out}: no such folder")
        path = save(args.sweeps_out, args.folder)
        print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)" if path else "no completed run to archive")
    else:
        if not args.folder.is_dir():
            sys.exit(f"{args.folder}: no such folder")
        if args.command == "list":
            print(_counts(Counter(p for _, p in archived(args.folder))))
            return
        try:
            runs = restore(args.folder, args.sweeps_out, args.platform)
        except ValueError as exc:
            sys.exit(f"restore: {exc}")
        print(f"restored {len(runs)} run(s) into {args.sweeps_out}")


if __name__ == "__main__":
    main()
