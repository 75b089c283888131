"""Sessions: `nox -s demo` (the main job), `nox -s tests`, `nox -s lint`, `nox -s report`, `nox -s notebook`."""

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

THREADS = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (SLURM tests need the local cluster packages: see .ci/install_slurm.sh)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]), env=THREADS)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def report(session: nox.Session) -> None:
    """Regenerate reports/ from reports/results.csv (no training, no checkpoints); `nox -s report -- sweeps_out`
    collects those run directories into reports/ first (`-- sweeps_out --update`: into the committed table,
    keeping the completed runs it records that are not here)."""
    session.install("-e", ".")
    if session.posargs:
        session.run(
            "python",
            "-m",
            "analysis.collect",
            *session.posargs,
            "--out",
            "reports/results.csv",
            "--curves",
            "reports/curves",
            env=THREADS,
        )
    session.run(
        "python", "-m", "analysis.report", "--results", "reports/results.csv", "--out", "reports", env=THREADS
    )
    if Path("reports/rerun/results.csv").exists():  # the rerun of the reproduction, while in progress (issue 25)
        session.run(
            "python",
            "-m",
            "analysis.report",
            "--results",
            "reports/rerun/results.csv",
            "--out",
            "reports/rerun/report",
            env=THREADS,
        )
        session.run(
            "python",
            "-m",
            "analysis.verdict_changes",
            "reports/results.csv",
            "reports/rerun/results.csv",
            "--out",
            "reports/rerun/verdict_changes.md",
            env=THREADS,
        )
    if Path("reports/sensitivity/default.csv").exists():
        session.run("python", "-m", "analysis.sensitivity", "--dir", "reports/sensitivity", env=THREADS)
    if list(Path("reports/tiny_preset").glob("*.csv")):
        session.run("python", "-m", "analysis.tiny_preset", "--dir", "reports/tiny_preset", env=THREADS)


NOTEBOOK = "analysis/notebooks/ablations.ipynb"
# run in the session's environment: python -c EXECUTE <notebook> <executed copy>
EXECUTE = """
import sys
from pathlib import Path

import nbclient
import nbformat

source, target = sys.argv[1:]
nb = nbformat.read(source, as_version=4)
nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
Path(target).parent.mkdir(parents=True, exist_ok=True)
nbformat.write(nb, target)
print(f"executed {source} -> {target}")
"""


@nox.session
def notebook(session: nox.Session) -> None:
    """Execute analysis/notebooks/ablations.ipynb headless (nbclient, no browser) against reports/results.csv
    (or the results file given: `nox -s notebook -- demo_out/results.csv`) and write the executed copy, tables
    and figures included, to notebook_out/ablations.ipynb (git-ignored). To work in it instead:
    `pip install -e '.[notebook]'`, then `jupyter lab analysis/notebooks/ablations.ipynb`."""
    session.install("-e", ".[notebook]")
    results = session.posargs[0] if session.posargs else "reports/results.csv"
    session.run(
        "python",
        "-c",
        EXECUTE,
        NOTEBOOK,
        "notebook_out/ablations.ipynb",
        env={**THREADS, "VJEPA_RESULTS": results},
    )


# The demo's schedule: the tiny preset on generated images only, 1000 steps of 32 at a 6x learning rate (peak
# 7.5e-4), the shortest measured whose encoders beat their random init beyond noise on the segmentation probe
# (docs/demo.md); the preset's own 2000 steps of 64 take about 20 minutes for the two runs on 2 cores.
DEMO = ["seed=0", "data.mix=image", "steps=1000", "batch_size=32", "optim.base_lr=6e-3"]


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the tiny dense-vs-block ablation end to end on the embedded generated images: the sweep
    (block and token loss, probes with the random-init baseline), the collected table and the report,
    all under demo_out/. Extra arguments replace DEMO (e.g. `nox -s demo -- seed=0,1,2 data.mix=image`)."""
    session.install("-e", ".")
    out = "demo_out"
    env = {**THREADS, "VJEPA_SWEEPS_OUT": out}
    sweep_args = session.posargs or DEMO
    session.run(
        "python", "sweeps/loss_granularity.py", "preset=tiny", "probes=synthetic", *sweep_args, env=env
    )
    session.run(
        "python",
        "-m",
        "analysis.collect",
        out,
        "--out",
        f"{out}/results.csv",
        "--curves",
        f"{out}/curves",
        env=env,
    )
    session.run(
        "python",
        "-m",
        "analysis.report",
        "--results",
        f"{out}/results.csv",
        "--out",
        f"{out}/report",
        env=env,
    )
    session.log(f"report: {out}/report/README.md")
