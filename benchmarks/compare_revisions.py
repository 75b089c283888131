"""Time the training step of two git revisions of this repository on the same machine, setting by setting.

    python benchmarks/compare_revisions.py 0024fbf HEAD --setting tiny_image small_image --steps 8 \
        --json reports/benchmarks/before-after-cpu2.json --markdown reports/benchmarks/before-after.md

Each revision is checked out into a temporary git worktree and measured by its own ``python -m vjepa.bench``
(so the code under test is exactly that revision's), one process per (revision, setting). The two revisions
alternate per setting (A B, then B A, ...) so slow drifts of a shared machine hit both alike. Prints one
line per pair (median step time of each revision, ratio B/A) and writes the raw results as JSON and a
Markdown table with the step split into its parts. Ratios are what to read: absolute times move with load.

``--repeats N`` times every setting N times over (pairs still alternating) and prints, per setting, the
geometric mean of the pairs' ratios with a 95 % t interval of their logs: one pair on these machines moves by
10 % or more, so a target such as "at most 0.89x" is met only where the interval's upper end is below it.
``--b-overrides`` gives revision B overrides of its own (an option under test, e.g. ``compile=true``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # analysis.stats, run as a script
PARTS = ("target_encoder", "online_encoder", "predictor", "loss", "masks", "backward", "optimizer", "ema")


@contextmanager
def worktree(rev: str):
    """A detached checkout of ``rev`` in a temporary directory (removed afterwards)."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if sha.returncode != 0:
        sys.exit(f"not a revision of {ROOT}: {rev!r} ({sha.stderr.strip()})")
    path = Path(tempfile.mkdtemp(prefix=f"vjepa-{rev[:12]}-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), sha.stdout.strip()],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def bench(tree: Path, setting: str, args, extra: list[str] = ()) -> dict:
    """One setting timed by the ``vjepa.bench`` of the checkout at ``tree`` (``extra``: overrides of its own)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "vjepa.bench", "--setting", setting, "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup)] + (["--threads", str(args.threads)] if args.threads else [])
    cmd += [*args.overrides, *extra]
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.exit(f"vjepa.bench failed in {tree} for {setting}:\n{out.stderr[-3000:]}")
    return lines[-1]


def markdown(results: list[dict], rev_a: str, rev_b: str) -> str:
    head = (
        f"| setting | step, {rev_a} | step, {rev_b} | ratio | samples/s, {rev_a} | samples/s, {rev_b} | "
        + " | ".join(f"{p} (ms)" for p in PARTS)
        + " |"
    )
    lines = [head, "|" + "---|" * (6 + len(PARTS))]
    for r in results:
        a, b = r["a"], r["b"]
        parts = " | ".join(f"{a['parts_ms'][p]:.0f} -> {b['parts_ms'][p]:.0f}" for p in PARTS)
        lines.append(
            f"| {r['setting']} | {a['step_ms']:.0f} ms | {b['step_ms']:.0f} ms | {r['ratio']:.2f} | "
            f"{a['samples_per_s']:.1f} | {b['samples_per_s']:.1f} | {parts} |"
        )
    return "\n".join(lines) + "\n"


def paired_ratio(ratios: list[float]) -> dict:
    """Geometric mean of per-pair ratios B/A with its 95 % t interval (pairs timed back to back share the
    machine's load, so their log ratios are the paired differences: ``analysis.stats``); None bounds for a
    single pair."""
    from analysis.stats import mean_and_se, t95

    mean, se = mean_and_se([math.log(r) for r in ratios])
    out = {"pairs": len(ratios), "geometric_mean": math.exp(mean), "low": None, "high": None}
    if len(ratios) > 1:
        half = t95(len(ratios) - 1) * se
        out.update(low=math.exp(mean - half), high=math.exp(mean + half), confidence=0.95)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rev_a", help="the baseline revision (e.g. a commit before an optimisation)")
    ap.add_argument("rev_b", help="the revision compared against it (e.g. HEAD)")
    ap.add_argument("--setting", nargs="+", default=["tiny_image", "tiny_joint", "small_image"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--repeats", type=int, default=1, help="pairs per setting, alternating which revision runs first"
    )
    ap.add_argument(
        "--b-overrides", nargs="+", default=[], help="Hydra overrides for revision B only (e.g. compile=true)"
    )
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides passed to both benchmarks")
    args = ap.parse_intermixed_args(argv)  # overrides may follow the options
    # --setting takes several names, so overrides written after it land there: give them back (as vjepa.bench)
    args.overrides = [s for s in args.setting if "=" in s] + list(args.overrides)
    args.setting = [s for s in args.setting if "=" not in s] or ap.get_default("setting")
    label_b = " ".join([args.rev_b, *args.b_overrides])
    results, pair = [], 0
    with worktree(args.rev_a) as tree_a, worktree(args.rev_b) as tree_b:
        arms = {"a": (tree_a, []), "b": (tree_b, args.b_overrides)}
        for _ in range(args.repeats):
            for setting in args.setting:
                order = ["a", "b"][:: 1 if pair % 2 == 0 else -1]
                pair += 1
                res = {key: bench(arms[key][0], setting, args, arms[key][1]) for key in order}
                res = {"setting": setting, "first": order[0], "a": res["a"], "b": res["b"]}
                res["ratio"] = res["b"]["step_ms"] / res["a"]["step_ms"]
                results.append(res)
                print(
                    f"{setting}: {args.rev_a} {res['a']['step_ms']:.0f} ms, {label_b} {res['b']['step_ms']:.0f} ms,"
                    f" ratio {res['ratio']:.3f}",
                    flush=True,
                )
    summary = {}
    for setting in dict.fromkeys(args.setting):
        summary[setting] = paired_ratio([r["ratio"] for r in results if r["setting"] == setting])
        s = summary[setting]
        interval = f", 95 % interval {s['low']:.3f}-{s['high']:.3f}" if s["low"] is not None else ""
        print(f"{setting}: B/A {s['geometric_mean']:.3f} over {s['pairs']} pair(s){interval}", flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "a": args.rev_a,
                    "b": label_b,
                    "results": results,
                    "ratios": summary,
                    "argv": argv or sys.argv[1:],
                },
                indent=2,
            )
        )
    if args.markdown:
        Path(args.markdown).write_text(markdown(results, args.rev_a, args.rev_b))


if __name__ == "__main__":
    main()
