"""`python -m sweeps <name> [key=value ...]`: the sweep declared by `sweeps/conf/<name>.yaml`.

Every ablation is this command with its name (`sweeps/<name>.py` scripts are the same call, kept for the
documented commands), so a new ablation needs only its YAML declaration. Without a known name it lists the
sweeps and exits with status 2. The hyper-parameter search has its own driver: `python -m sweeps.hpo`.
"""

import sys
from pathlib import Path

from sweeps.common import ablation_main

CONF = Path(__file__).resolve().parent / "conf"
NOT_ABLATIONS = ("base", "hpo")  # the shared base config; the search (its own driver)


def sweep_names() -> list[str]:
    """The ablations declared in sweeps/conf/ (one YAML file each, at the top level)."""
    return sorted(p.stem for p in CONF.glob("*.yaml") if p.stem not in NOT_ABLATIONS)


def main(argv: list[str]) -> None:
    names = sweep_names()
    if not argv or argv[0] not in names:
        said = f"unknown sweep {argv[0]!r}; " if argv and not argv[0].startswith("-") else ""
        print(
            f"{said}usage: python -m sweeps <name> [key=value ...]\n  sweeps: {', '.join(names)}\n"
            "  (python -m sweeps <name> --help: its axis, groups and keys)",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.argv[1:] = argv[1:]
    ablation_main(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
