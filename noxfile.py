"""Sessions: `nox -s demo` (the main job), `nox -s tests`, `nox -s lint`."""

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
    collects those run directories into reports/ first."""
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
            "reports/curves.csv",
            env=THREADS,
        )
    session.run(
        "python", "-m", "analysis.report", "--results", "reports/results.csv", "--out", "reports", env=THREADS
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the embedded synthetic data: a tiny pretraining run with its probes."""
    session.install("-e", ".")
    session.run("python", "-m", "vjepa.train", "preset=tiny", *session.posargs, env=THREADS)
