"""The golden run: a short deterministic training run whose numbers name the toolkit's numerics.

    python -m vjepa.golden [--check]   # train it again and compare with vjepa/golden/tiny.json, bit for bit
    python -m vjepa.golden --write     # regenerate the file (only when a change of numerics is intended)

Short runs of the tiny preset on the embedded generated data (``data=synthetic``, joint image + video
batches, so both paths are covered), on CPU in fp32 with one thread, logging every step: the preset as
shipped (dense token loss), then probed with ``probes=fast`` (generated data only); the published V-JEPA 2.1
recipe (``recipe=vjepa21``: RoPE, deep supervision, modality embeddings, the V-JEPA 2.1 masks, the warmed-up
context loss), not probed; and the block-level loss (``loss=block``), not probed. The file records, as canonical JSON with every float written exactly (``repr``):

* each logged step's numbers (losses per modality, lr, EMA momentum, context weight, mask ratios, feature
  statistics and the collapse diagnostics), without wall times, rates and token counts;
* the probe scores (``python -m vjepa.evaluate``'s, as probing any run), without their ``time_s`` keys;
* sha256 digests of the final weights of each network and of the features each probe task read (its data
  and the extraction), which the probe scores of sets this small reflect only coarsely.

``numerics_id()`` is the first 12 hex digits of the sha256 of the reference file's bytes
(``golden/tiny.json``): any change of the numbers forces a new golden file (the test suite runs the check),
hence a new id. The trainer records it in
``status.json`` and ``metrics.json`` as ``numerics`` and the probes as ``<prefix>/numerics`` (the probes may
be run again later, by other code), with ``+compiled2`` for a run or probes whose blocks ran compiled
(``compile=true``, which changes the rounding: ``run_numerics``), so analysis can tell runs of the same numerics from runs whose numbers may
differ (``analysis.numerics``). The golden run covers the code paths it runs: the real data sets' loaders and
the probe tasks on real data are not in it.

Bit-for-bit equality holds on one platform: another torch build or a CPU with other vector instructions
rounds differently (AVX2 and AVX512 differ from the first step). Each file records the platform it was
written on (``platform``; not compared: equal numbers elsewhere are the same numerics). The reference file
is one platform's; other platforms have their own file, ``golden/platforms/<platform>.json``, written by the
same code as the reference and naming its id (``reference``), so the check bites wherever a file for the
platform exists (``golden_file()`` picks it). A file may record fewer runs than ``RUNS`` (written before a run
was added): the check trains and compares the runs it records and says which it leaves out. ``--check``
says whether a difference came on the file's platform, and runs record theirs (``platform`` in status.json
and metrics.json, ``<prefix>/platform`` beside the probes' numerics), so analysis can key runs by both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_FILE = GOLDEN_DIR / "tiny.json"  # the reference: its hash is the numerics id
PLATFORM_DIR = GOLDEN_DIR / "platforms"  # the same code's numbers on other platforms
FORMAT = 1

# Settings every golden run shares: CPU, fp32, one thread, every step logged, no checkpoint before the end.
COMMON = (
    "preset=tiny",
    "data=synthetic",
    "data.mix=joint",
    "seed=0",
    "steps=6",
    "batch_size=8",
    "log_every=1",
    "ckpt_every=1000",
    "diagnostics.batch_size=8",
    "device=cpu",
    "precision=fp32",
    "threads=1",
    "compile=false",
    "activation_checkpointing=false",
    "progress=false",
)
# name -> (the overrides of that run, after COMMON; the probe config it is probed with afterwards, or None)
RUNS = {
    "tiny": ((), "fast"),
    "recipe_vjepa21": (("recipe=vjepa21",), None),
    "block": (("loss=block",), None),
}
# logged keys that are not numerics: times, rates, counts set by the configuration
NOT_NUMERICS = ("wall_time_s", "samples_per_s", "tokens_per_s", "numerics", "platform", "threads")
NOT_NUMERICS_PREFIX = ("tokens_", "skipped_")


def numerics_id(path: Path | str | None = None) -> str | None:
    """sha256 (first 12 hex digits) of the golden file's bytes (default: the committed one); None where it
    is missing (an installation without package data)."""
    path = Path(path) if path is not None else GOLDEN_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        return None


# The compiled blocks' arithmetic, which no golden file checks: bumped whenever the code changes what the
# compiled blocks compute (2: on CPU the RoPE blocks' linear layers add their bias apart, ``vjepa.models.rope``).
COMPILED = "compiled2"


def run_numerics(compiled: str | bool | None = None) -> str | None:
    """The numerics a run or probe computes with: ``numerics_id()``, with ``+compiled2`` (``COMPILED``) where
    the blocks run compiled in torch.compile's default mode (``compiled="default"``, i.e. ``compile=true``: its
    fused kernels round differently from the eager ones the golden run checks, on CPU as on GPU),
    ``+compiled2-<mode>`` in another mode (``schema.compile_mode``; an autotuned mode may pick other kernels,
    so other rounding)."""
    ident = numerics_id()
    if not ident or not compiled:
        return ident
    return f"{ident}+{COMPILED}" if compiled in (True, "default") else f"{ident}+{COMPILED}-{compiled}"


def platform_file(where: str) -> Path:
    """The golden file of platform ``where`` (as ``platform()`` writes it) other than the reference's."""
    return PLATFORM_DIR / (re.sub(r"[^A-Za-z0-9.]+", "-", where).strip("-") + ".json")


def golden_file(where: str | None = None) -> Path:
    """The golden file to check on platform ``where`` (default: this CPU): the reference file where it was
    written there, else that platform's file where one exists, else the reference file (whose comparison
    then cannot tell code from platform)."""
    where = where or platform("cpu")
    if GOLDEN_FILE.exists() and json.loads(GOLDEN_FILE.read_text()).get("platform") == where:
        return GOLDEN_FILE
    own = platform_file(where)
    return own if own.exists() else GOLDEN_FILE


def canonical_json(obj) -> str:
    """Sorted keys, one value per line, floats as ``repr`` (exact: they read back to the same bits)."""
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"


def compose(overrides) -> object:
    """The training config of ``overrides``, composed as ``python -m vjepa.train`` composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import vjepa.train  # noqa: F401  (registers the run-name resolver)

    with initialize_config_module("vjepa.conf", version_base=None):
        return hydra_compose("train", overrides=list(overrides))


def _digest(obj, h=None) -> str:
    """sha256 (16 hex digits) of the tensors and plain values in ``obj`` (dicts by sorted key, lists in
    order): bit for bit, with names, dtypes and shapes."""
    import torch

    top = h is None
    h = h or hashlib.sha256()
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(f"{k!s}:".encode())
            _digest(obj[k], h)
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _digest(v, h)
        h.update(b"]")
    elif torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    return h.hexdigest()[:16] if top else ""


def _numbers(record: dict) -> dict:
    return {
        k: v for k, v in record.items() if k not in NOT_NUMERICS and not k.startswith(NOT_NUMERICS_PREFIX)
    }


def train_golden(name: str, run_dir: Path) -> dict:
    """Train golden run ``name`` into ``run_dir`` and probe it; its record for the golden file.

    The probes run through ``vjepa.evaluate`` with its feature cache, so the record holds a digest of the
    features the probes read (their data and the extraction, bit for bit) beside the probe scores, which
    sets this small resolve only coarsely."""
    import torch

    from vjepa.evaluate import evaluate
    from vjepa.runfiles import MetricsLog, load_checkpoint, read_json
    from vjepa.train import run

    extra, probes_name = RUNS[name]
    overrides = [*COMMON, *extra, "probes=none"]
    run_dir = Path(run_dir)
    cfg = compose([f"run_dir={run_dir}", *overrides])
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            run(cfg)
            if probes_name:
                evaluate(run_dir, probes=probes_name, device="cpu", threads=1, cache=True)
    finally:
        torch.set_num_threads(threads)
    steps = [_numbers(r) for r in MetricsLog(run_dir / "metrics.jsonl").read()]
    final = read_json(run_dir / "metrics.json")
    probes = {
        k: v
        for k, v in final.items()
        if k.startswith("probe") and not k.endswith("time_s") and k.rsplit("/", 1)[-1] not in NOT_NUMERICS
    }
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    digests = {net: _digest(state[net]) for net in ("encoder", "target_encoder", "predictor")}
    # the features the probe tasks read: one cache file per data set and layers, named by their spec's hash
    for path in sorted((run_dir / "probe_cache").glob("*.pt")):
        digests[f"probe features {path.stem}"] = _digest(load_checkpoint(path))
    record = {"overrides": overrides, "steps": steps, "probes": probes, "sha256": digests}
    if probes_name:
        record["probes_config"] = probes_name
    return record


def golden_record(workdir: Path | str | None = None, names=None) -> dict:
    """The golden runs ``names`` (default: all of ``RUNS``), trained into ``workdir`` (default: a temporary
    directory, removed after)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="vjepa-golden-") as tmp:
            return golden_record(tmp, names)
    names = list(RUNS) if names is None else [n for n in RUNS if n in names]
    runs = {name: train_golden(name, Path(workdir) / name) for name in names}
    return {"format": FORMAT, "platform": platform("cpu"), "runs": runs}


def stale_reference(golden: dict) -> str | None:
    """Why a platform file cannot be compared, or None: it must name the reference file's numerics id as
    its ``reference`` (it was written by the code that wrote the reference)."""
    ref = golden.get("reference")
    if ref is None or ref == numerics_id():
        return None
    return (
        f"this platform's golden file was written beside the reference numerics {ref}, the reference now is "
        f"{numerics_id()}: write it again (`python -m vjepa.golden --write`) on this platform, from the code "
        "that wrote the reference"
    )


def _leaves(record: dict):
    """(key, value) of every number and string of a golden record, in the order a reader wants the first
    difference: run by run, step by step, then probes, then weights. The platform is not compared: numbers
    equal bit for bit on another platform are the same numerics."""
    yield "format", record.get("format")
    runs = record.get("runs") or {}
    for name in sorted(runs, key=lambda n: (list(RUNS).index(n) if n in RUNS else len(RUNS), n)):
        r = runs[name]
        yield f"{name}/overrides", r.get("overrides")
        for i, step in enumerate(r.get("steps") or []):
            for k in sorted(step):
                yield f"{name}/steps[{i}] (step {step.get('step', '?')})/{k}", step[k]
        yield f"{name}/steps (count)", len(r.get("steps") or [])
        yield f"{name}/probes_config", r.get("probes_config")
        for section in ("probes", "sha256"):
            for k in sorted(r.get(section) or {}):
                yield f"{name}/{section}/{k}", r[section][k]


def compare(golden: dict, now: dict) -> list[tuple[str, object, object]]:
    """Every difference between two golden records as (key, golden value, value now), the first one first;
    a key only one side has gives ``None`` on the other. Values are equal when their exact JSON is (so a
    float equals only itself, bit for bit, NaN included)."""
    a, b = dict(_leaves(golden)), dict(_leaves(now))
    keys = list(a) + [k for k in b if k not in a]
    exact = lambda v: json.dumps(v, sort_keys=True, allow_nan=True)  # noqa: E731
    return [(k, a.get(k), b.get(k)) for k in keys if k not in a or k not in b or exact(a[k]) != exact(b[k])]


def _show(v) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return repr(v)
    return json.dumps(v)


def platform(device="cpu") -> str:
    """Where numbers are computed, as far as it changes their rounding: the device (a CPU by the vector
    instructions torch uses on it, a GPU by its name) and the torch build, e.g. "cpu AVX512, torch 2.4.1"."""
    import platform as _platform

    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        where = f"cuda {torch.cuda.get_device_name(dev)}"
    elif dev.type == "cpu":
        where = f"cpu {_platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
    else:
        where = dev.type
    return f"{where}, torch {torch.__version__}"


def describe(diffs: list[tuple[str, object, object]], path: Path, written_on: str | None) -> str:
    key, was, now = diffs[0]
    here = platform("cpu")
    lines = [
        f"golden run differs from {path}: {len(diffs)} value(s); the first:",
        f"  {key}",
        f"    golden: {_show(was)}",
        f"    now:    {_show(now)}",
    ]
    if written_on != here:
        lines += [
            f"The golden file was written on {written_on}, this is {here}: another CPU instruction set or torch "
            "build rounds differently, so this comparison cannot tell a change of the code's numerics from "
            "the platform's. Check on the golden file's platform."
        ]
    else:
        lines += [
            f"Same platform ({here}): the code's numerics changed. If that is intended, run "
            "`python -m vjepa.golden --write` and commit the file: runs trained from then on record its new "
            "numerics id."
        ]
    return "\n".join(lines)


def check(
    path: Path | str | None = None, workdir=None
) -> tuple[list[tuple[str, object, object]], str | None]:
    """Train the golden runs the file at ``path`` (default: ``golden_file()``) records again: (their
    differences from it, the platform that file was written on)."""
    golden = json.loads(Path(path or golden_file()).read_text())
    return compare(golden, golden_record(workdir, list(golden.get("runs") or {}))), golden.get("platform")


def write_target() -> Path:
    """Where ``--write`` writes on this platform: the reference file where it is this platform's (or absent),
    else this platform's own file."""
    here = platform("cpu")
    if not GOLDEN_FILE.exists() or json.loads(GOLDEN_FILE.read_text()).get("platform") == here:
        return GOLDEN_FILE
    return platform_file(here)


def write(path: Path | str | None = None, workdir=None) -> str:
    """Train every golden run and write the golden file at ``path`` (default: ``write_target()``; a platform's
    own file names the reference's id); the numerics id it stands for (a platform file's: the reference's)."""
    from vjepa.runfiles import atomic_write_text

    path = Path(path or write_target())
    record = golden_record(workdir)
    if path != GOLDEN_FILE and write_target() != GOLDEN_FILE:
        record["reference"] = numerics_id()
    atomic_write_text(path, canonical_json(record))
    return record.get("reference") or numerics_id(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vjepa.golden", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare with the golden file (the default)")
    mode.add_argument("--write", action="store_true", help="regenerate the golden file")
    ap.add_argument(
        "--file", type=Path, help=f"the golden file (default: {GOLDEN_FILE.name} or this platform's own file)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.write:
        args.file = args.file or write_target()
        before = numerics_id(args.file)
        new = write(args.file)
        took = f"{time.perf_counter() - t0:.1f} s"
        if new != numerics_id(args.file):  # a platform's own file: the numbers of the reference's code here
            print(
                f"[golden] wrote {args.file} on {platform('cpu')} beside the reference numerics {new}, {took}"
            )
            return
        change = "unchanged" if new == before else f"was {before}"
        print(f"[golden] wrote {args.file}: numerics {new} ({change}), {took}")
        return
    args.file = args.file or golden_file()
    if not args.file.exists():
        print(f"[golden] {args.file} does not exist: run `python -m vjepa.golden --write`", file=sys.stderr)
        sys.exit(1)
    golden = json.loads(args.file.read_text())
    stale = stale_reference(golden)
    if stale:
        print(f"[golden] {args.file}: {stale}", file=sys.stderr)
        sys.exit(1)
    diffs, written_on = check(args.file)
    left_out = [n for n in RUNS if n not in (golden.get("runs") or {})]
    if left_out:
        print(
            f"[golden] {args.file} records no {', '.join(left_out)} run: not checked here (--write adds it)"
        )
    if diffs:
        print(describe(diffs, args.file, written_on), file=sys.stderr)
        sys.exit(1)
    print(
        f"[golden] matches {args.file} bit for bit: numerics {golden.get('reference') or numerics_id(args.file)} "
        f"({time.perf_counter() - t0:.1f} s)"
    )


if __name__ == "__main__":
    main()
