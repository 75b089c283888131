"""The golden run (vjepa.golden), the numerics runs record, and analysis.numerics's flags.

``test_golden_run_matches_committed_file`` is ``python -m vjepa.golden --check`` in-process: it fails when
the code's numerics change without a new golden file (``python -m vjepa.golden --write``)."""

import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import TINY_TEST
from vjepa import golden
from vjepa.golden import GOLDEN_FILE, compare, golden_file, numerics_id, platform


@pytest.fixture(scope="module")
def golden_runs(tmp_path_factory):
    """The golden runs trained once for this module: (their record, the directory holding their runs)."""
    workdir = tmp_path_factory.mktemp("golden")
    return golden.golden_record(workdir), workdir


def _committed() -> dict:
    return json.loads(GOLDEN_FILE.read_text())


def _perturbed() -> tuple[dict, str, float, float]:
    """The committed record with one float changed in its last digit: (record, its key, before, after)."""
    record = _committed()
    step = record["runs"]["tiny"]["steps"][3]
    before = step["loss_video"]
    step["loss_video"] = after = math.nextafter(before, math.inf)
    return record, "tiny/steps[3] (step 4)/loss_video", before, after


def test_golden_run_matches_committed_file(golden_runs):
    """The golden file of this platform (the reference or the platform's own), bit for bit."""
    record, _ = golden_runs
    path = golden_file()
    committed = json.loads(path.read_text())
    assert golden.stale_reference(committed) is None
    recorded = {**record, "runs": {k: v for k, v in record["runs"].items() if k in committed["runs"]}}
    diffs = compare(committed, recorded)
    if (
        diffs
        and committed.get("platform") != platform("cpu")
        and os.environ.get("VJEPA_REQUIRE_GOLDEN") != "1"
    ):
        pytest.skip(golden.describe(diffs, path, committed.get("platform")))
    assert not diffs, golden.describe(diffs, path, committed.get("platform"))
    # bit for bit: the file --write would write now is the committed one (a platform's names the reference)
    if path != GOLDEN_FILE:
        recorded["reference"] = numerics_id()
    assert golden.canonical_json(recorded) == path.read_text()


def test_golden_file_is_package_data_and_names_the_numerics():
    assert numerics_id() == __import__("hashlib").sha256(GOLDEN_FILE.read_bytes()).hexdigest()[:12]
    assert GOLDEN_FILE.read_text() == golden.canonical_json(_committed())  # canonical as written
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"golden/*.json"' in pyproject and '"golden/platforms/*.json"' in pyproject
    record = _committed()
    assert set(record["runs"]) <= set(golden.RUNS) and {"tiny", "recipe_vjepa21"} <= set(record["runs"])
    # every platform's own file: all the runs, written beside the reference's numerics, canonical
    own = sorted(golden.PLATFORM_DIR.glob("*.json"))
    assert own, "no platform file: the check bites on the reference's platform only"
    for path in own:
        other = json.loads(path.read_text())
        assert set(other["runs"]) == set(golden.RUNS) and other["reference"] == numerics_id()
        assert golden.platform_file(other["platform"]) == path and path.read_text() == golden.canonical_json(
            other
        )
        assert other["runs"]["block"]["overrides"][-2:] == ["loss=block", "probes=none"]
    tiny = record["runs"]["tiny"]
    assert tiny["probes_config"] == "fast" and any(k.startswith("probe features") for k in tiny["sha256"])
    assert [s["step"] for s in tiny["steps"]] == [1, 2, 3, 4, 5, 6]
    assert {"loss_image", "loss_video", "lr"} <= set(tiny["steps"][0])
    assert not any(k in s for s in tiny["steps"] for k in ("wall_time_s", "samples_per_s", "tokens_per_s"))
    assert tiny["probes"] and not any(
        k.endswith(("time_s", "/numerics", "/platform")) for k in tiny["probes"]
    )


def test_a_float_changed_in_its_last_digit_is_reported(tmp_path):
    record, key, before, after = _perturbed()
    assert before != after
    diffs = compare(_committed(), record)
    assert diffs == [(key, before, after)]
    text = golden.describe(diffs, GOLDEN_FILE, platform("cpu"))
    assert key in text and repr(before) in text and repr(after) in text and "--write" in text
    # another platform: the message says the comparison cannot tell the code's numerics from the platform's
    assert "rounds differently" in golden.describe(diffs, GOLDEN_FILE, "cpu x86_64 AVX2, torch 0.0")
    # a new golden file, a new id
    copy = tmp_path / "tiny.json"
    copy.write_text(golden.canonical_json(record))
    assert numerics_id(copy) != numerics_id()
    # keys only one side has, and NaN equal to itself only
    extra = _committed()
    extra["runs"]["tiny"]["steps"][0]["new_metric"] = math.nan
    diffs = compare(_committed(), extra)
    assert len(diffs) == 1 and diffs[0][:2] == ("tiny/steps[0] (step 1)/new_metric", None)
    assert compare(extra, json.loads(json.dumps(extra))) == []


def test_golden_file_is_the_platforms_own_and_check_trains_the_runs_it_records(monkeypatch, tmp_path, capsys):
    here = json.loads(next(golden.PLATFORM_DIR.glob("*.json")).read_text())["platform"]
    assert golden_file(here) == golden.platform_file(here)
    assert golden_file(_committed()["platform"]) == GOLDEN_FILE
    assert golden_file("cpu riscv64 RVV, torch 9.9") == GOLDEN_FILE  # no file of its own
    # a file written before a run was added: only its runs are trained and compared, the rest named
    trained = []
    monkeypatch.setattr(
        golden, "golden_record", lambda workdir=None, names=None: trained.append(names) or _committed()
    )
    golden.main(["--check", "--file", str(GOLDEN_FILE)])
    out = capsys.readouterr().out
    assert trained == [list(_committed()["runs"])] and "bit for bit" in out
    if "block" not in _committed()["runs"]:
        assert "records no block run" in out
    # a platform file written beside another reference is refused, naming both ids
    stale = tmp_path / "stale.json"
    stale.write_text(golden.canonical_json({**_committed(), "reference": "0123456789ab"}))
    with pytest.raises(SystemExit) as exc:
        golden.main(["--check", "--file", str(stale)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "0123456789ab" in err and numerics_id() in err


def test_check_command_exits_1_naming_the_first_difference(monkeypatch, capsys):
    monkeypatch.setattr(golden, "golden_record", lambda workdir=None, names=None: _committed())
    golden.main(["--check", "--file", str(GOLDEN_FILE)])  # no exit: a match
    assert "bit for bit" in capsys.readouterr().out
    record, key, before, after = _perturbed()
    monkeypatch.setattr(golden, "golden_record", lambda workdir=None, names=None: record)
    with pytest.raises(SystemExit) as exc:
        golden.main(["--check", "--file", str(GOLDEN_FILE)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert key in err and repr(before) in err and repr(after) in err


def test_runs_record_their_numerics_and_platform(golden_runs):
    """Trained, then probed by vjepa.evaluate (the golden run's probes): both record their numerics."""
    _, workdir = golden_runs
    run = workdir / "tiny"
    status = json.loads((run / "status.json").read_text())
    final = json.loads((run / "metrics.json").read_text())
    for d in (status, final):
        assert d["numerics"] == numerics_id() and d["platform"] == platform("cpu")
    assert final["probe/numerics"] == numerics_id() and final["probe/platform"] == platform("cpu")
    assert final["probe/threads"] == 1  # golden probes run at one thread (vjepa.golden)


def test_a_run_resumed_with_other_numerics_records_both(compose_cfg, monkeypatch):
    from vjepa.runfiles import read_status
    from vjepa.trainer import train

    one_probe = [
        "probes=fast",
        *(f"~probes.tasks.{t}" for t in ("shapes_det", "shapes_video", "shapes_video_linear")),
    ]
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1", "ckpt_every=1", "device=cpu", *one_probe)
    assert train(cfg, stop_after=1) is None
    first = numerics_id()
    assert read_status(cfg.run_dir)["numerics"] == first
    monkeypatch.setattr(golden, "numerics_id", lambda path=None: "feedfeedfeed")  # the code changed
    final = train(cfg)
    assert final["numerics"] == read_status(cfg.run_dir)["numerics"] == f"{first}>feedfeedfeed"
    assert final["platform"] == platform("cpu")  # the same platform: one part
    # the end-of-run probes ran with the code that finished the run
    assert final["probe/numerics"] == "feedfeedfeed" and final["probe/platform"] == platform("cpu")
    assert "probe/shapes_seg/miou" in final


def test_compiled_blocks_are_other_numerics_and_a_run_resumed_compiled_records_both(compose_cfg):
    """compile=true changes the rounding (fused kernels), so a run and its probes record ``+compiled2``; a run
    resumed with compile switched on is neither an eager nor a compiled run (analysis keys it on its own)."""
    from vjepa.runfiles import read_status
    from vjepa.trainer import probe_numerics, train

    first = numerics_id()
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1", "ckpt_every=1", "device=cpu", "probes=none")
    assert train(cfg, stop_after=1) is None
    assert read_status(cfg.run_dir)["numerics"] == first
    cfg.compile = True
    final = train(cfg)
    assert final["numerics"] == read_status(cfg.run_dir)["numerics"] == f"{first}>{first}+compiled2"
    probed = probe_numerics({"probe/x/top1": 0.5}, torch.device("cpu"), compiled=True)
    assert probed["probe/numerics"] == f"{first}+compiled2"
    assert probe_numerics({"probe/x/top1": 0.5}, torch.device("cpu"))["probe/numerics"] == first


def test_a_compile_mode_reaches_every_block_and_is_numerics_of_its_own(compose_cfg, monkeypatch, tmp_path):
    """compile=<mode> compiles every block in that torch.compile mode (an autotuned mode may choose other
    kernels than compile=true's, so it records ``+compiled2-<mode>``, never paired with compile=true's runs)."""
    from vjepa.runfiles import read_status
    from vjepa.trainer import train

    modes = []
    # record the calls instead of compiling (max-autotune spends minutes benchmarking kernels on CPU)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: modes.append(kw))
    tiny = (*TINY_TEST, "steps=1", "device=cpu", "probes=none")
    cfg = compose_cfg(*tiny, "compile=max-autotune", f"run_dir={tmp_path / 'autotuned'}")
    train(cfg)
    assert len(modes) == 2 * cfg.model.depth + cfg.predictor.depth  # online, target encoder, predictor
    assert all(kw == {"dynamic": True, "mode": "max-autotune"} for kw in modes)
    assert read_status(cfg.run_dir)["numerics"] == f"{numerics_id()}+compiled2-max-autotune"
    modes.clear()
    cfg = compose_cfg(*tiny, "compile=true", f"run_dir={tmp_path / 'default'}")
    train(cfg)
    assert len(modes) == 2 * cfg.model.depth + cfg.predictor.depth
    assert all(kw == {"dynamic": True, "mode": None} for kw in modes)  # torch.compile's default
    assert read_status(cfg.run_dir)["numerics"] == f"{numerics_id()}+compiled2"


def test_collect_carries_numerics_into_text_columns(golden_runs, tmp_path):
    from analysis.collect import load_results, read_run, write_csv

    run = golden_runs[1] / "tiny"
    row = read_run(run)
    assert row["numerics"] == row["probe_numerics"] == numerics_id()
    assert row["platform"] == row["probe_platform"] == platform("cpu")
    assert "probe/numerics" not in row and "probe/platform" not in row
    assert row["probe_threads"] == 1 and "probe/threads" not in row
    # a run made before the numerics were recorded: empty columns
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("checkpoints"))
    for name in ("status.json", "metrics.json"):
        d = json.loads((old / name).read_text())
        for k in ("numerics", "platform", "probe/numerics", "probe/platform"):
            d.pop(k, None)
        (old / name).write_text(json.dumps(d))
    row_old = read_run(old)
    assert row_old["numerics"] is None and row_old["probe_numerics"] is None
    # an id of digits alone stays text
    df = pd.DataFrame(
        [{**row, "axis": "", "variant": "", "numerics": "000000001230", "probe_numerics": "1e5000000000"}]
    )
    write_csv(df, tmp_path / "results.csv")
    back = load_results(tmp_path / "results.csv")
    assert back["numerics"].iloc[0] == "000000001230" and back["probe_numerics"].iloc[0] == "1e5000000000"


# ---- analysis.numerics ----------------------------------------------------------------------------------
def _runs(*rows) -> pd.DataFrame:
    base = {"sweep": "s", "preset": "tiny", "status": "completed", "code_version": "abc1234"}
    return pd.DataFrame([{**base, "run_id": f"s/{i}", **r} for i, r in enumerate(rows)])


def _two_seeds(key: str, common: str, odd: str) -> pd.DataFrame:
    """Variants a and b at seeds 0 and 1, all with ``key`` = ``common`` but b at seed 0 (``odd``)."""
    cells = [("a", 0, common), ("b", 0, odd), ("a", 1, common), ("b", 1, common)]
    return _runs(*({"variant": v, "seed": s, key: value} for v, s, value in cells))


def test_different_numerics_ids_cross_the_same_do_not():
    from analysis.numerics import crossing_pairs, numerics_note

    crossing = _two_seeds("numerics", "111111111111", "222222222222")
    assert crossing_pairs(crossing, "a", "b") == [0]
    note = numerics_note(crossing)
    assert note and "111111111111" in note and "222222222222" in note and "seed 0 mixes" in note
    same = crossing.assign(numerics="111111111111")
    assert crossing_pairs(same, "a", "b") == [] and numerics_note(same) is None
    # the same id on another platform crosses
    elsewhere = same.assign(platform=["cpu x86_64 AVX512, torch 2", "cpu x86_64 AVX2, torch 2"] * 2)
    assert crossing_pairs(elsewhere, "a", "b") == [0, 1]


def test_a_cpu_run_at_another_thread_count_crosses_numerics():
    """On CPU the thread count changes the float rounding (the losses of a tiny-preset run at 1 and 2 threads
    differ in the last bits from step 10 on), so a pair whose runs trained at different counts crosses; on
    a GPU the count of host threads does not, and one thread is the golden run's own setting."""
    from analysis.numerics import crossing_pairs, numerics_key

    runs = _two_seeds("threads", 1, 2).assign(numerics="111111111111", device="cpu")
    assert crossing_pairs(runs, "a", "b") == [0]
    assert list(numerics_key(runs)) == [
        "numerics 111111111111",
        "numerics 111111111111 at 2 threads",
        "numerics 111111111111",
        "numerics 111111111111",
    ]
    assert crossing_pairs(runs.assign(threads=2), "a", "b") == []
    assert crossing_pairs(runs.assign(device="cuda:0", precision="bf16"), "a", "b") == []
    old = _two_seeds("threads", 1, 4).assign(device="cpu")  # before the numerics id: by code version
    assert numerics_key(old).iloc[1] == "code abc1234 at 4 threads" and crossing_pairs(old, "a", "b") == [0]
    # all trained at one thread, b of seed 0 probed again at 2 (vjepa.evaluate threads=auto): probe scores
    # cross, training metrics do not; probes recorded at one thread, or not recorded, do not cross
    cpu = "cpu x86_64 AVX2, torch 2"
    ids = {
        "numerics": "111111111111",
        "probe_numerics": "111111111111",
        "platform": cpu,
        "probe_platform": cpu,
    }
    probed = _two_seeds("probe_threads", 1, 2).assign(threads=1, device="cpu", **ids)
    assert crossing_pairs(probed, "a", "b", "probe/x/top1") == [0]
    assert crossing_pairs(probed, "a", "b", "loss_final") == []
    assert numerics_key(probed, "probe/x/top1").iloc[1] == (
        f"numerics 111111111111 on {cpu}; probed: numerics 111111111111 on {cpu} at 2 threads"
    )
    assert crossing_pairs(probed.assign(probe_threads=1), "a", "b") == []
    assert crossing_pairs(probed.drop(columns="probe_threads"), "a", "b") == []
    gpu = probed.assign(probe_platform="cuda NVIDIA H100, torch 2", threads=1)
    assert crossing_pairs(gpu, "a", "b") == []  # host threads do not round a GPU's probes


def test_unrecorded_numerics_go_by_code_version():
    from analysis.numerics import crossing_pairs, numerics_by_group, numerics_note

    runs = _two_seeds("code_version", "4d8dd59", "ea27e23")
    assert crossing_pairs(runs, "a", "b") == [0]
    assert numerics_note(runs) == (
        "runs of 2 code versions with unrecorded numerics (4d8dd59, ea27e23): pairs across them may differ "
        "in numerics and are flagged (seed 0 mixes them)"
    )
    same = runs.assign(code_version="4d8dd59")
    assert crossing_pairs(same, "a", "b") == [] and numerics_note(same) is None
    # a recorded id and an unrecorded one cross; an unfinished run is not compared
    mixed = pd.concat(
        [same, _runs({"variant": "b", "seed": 2, "numerics": "111111111111"})], ignore_index=True
    )
    mixed = pd.concat([mixed, _runs({"variant": "a", "seed": 2, "status": "running"})], ignore_index=True)
    assert crossing_pairs(mixed, "a", "b") == []
    groups = numerics_by_group(pd.concat([runs.assign(sweep="x"), same.assign(sweep="y")], ignore_index=True))
    assert list(groups["numerics"]) == ["mixed", "one numerics"]
    assert groups["mixed_seeds"].iloc[0] == "0" and groups["n_keys"].iloc[0] == 2


def test_probe_numerics_count_for_probe_scores_only():
    from analysis.numerics import crossing_pairs

    runs = _runs(
        {"variant": "a", "seed": 0, "numerics": "111111111111", "probe_numerics": "111111111111"},
        {"variant": "b", "seed": 0, "numerics": "111111111111", "probe_numerics": "333333333333"},
    )
    assert crossing_pairs(runs, "a", "b", "probe/cifar10_linear/top1") == [0]
    assert crossing_pairs(runs, "a", "b") == [0]  # no metric: the strictest
    assert crossing_pairs(runs, "a", "b", "loss_final") == []


def test_committed_results_table_without_numerics_columns():
    from analysis.collect import load_results
    from analysis.numerics import crossing_pairs, numerics_by_group

    results = load_results(Path(__file__).parents[1] / "reports" / "results.csv")
    groups = numerics_by_group(results).set_index("sweep")
    assert groups.loc["mask_trim", "numerics"] == "one numerics"
    assert groups.loc["loss_granularity", "numerics"] == "mixed"
    assert groups.loc["loss_granularity", "mixed_seeds"] == ""  # seed 0 at ea27e23, seeds 1-2 at 4d8dd59
    context = results[results["sweep"] == "context_loss"]
    # seeds 0-2: lambda0 and l005_const e4addbd / a92023c / a92023c, l05_warmup a92023c / a92023c / 8f63c43
    assert crossing_pairs(context, "lambda0", "l005_const") == []
    assert crossing_pairs(context, "lambda0", "l05_warmup") == [0, 2]
