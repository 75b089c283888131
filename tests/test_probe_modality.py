"""The probe tasks of a modality whose tokenizer a run never trained are not run (vjepa.probes.modality)."""

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY_TEST
from vjepa.config_check import ConfigError, check_config
from vjepa.probes.modality import trained_tasks, untrained_modality

VIDEO_TASKS = ["shapes_video", "shapes_video_linear"]  # probes=fast's tasks on clips


def test_untrained_modality_of_each_tokenizer_and_mix():
    assert untrained_modality("separate", "image") == "video"
    assert untrained_modality("separate", "video") == "image"
    assert untrained_modality("separate", "joint") is None
    assert untrained_modality("shared3d", "image") is None  # the 3-D tokenizer trains on repeated frames


def test_an_image_run_with_separate_tokenizers_drops_the_video_tasks_only(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "probes=fast", "data.mix=image")
    kept, dropped = trained_tasks(cfg.probes, cfg)
    assert dropped == VIDEO_TASKS
    assert sorted(kept.tasks) == ["shapes_det", "shapes_seg"]
    assert kept.image_size == cfg.data.image.size == 32  # interpolations resolved against the run
    assert sorted(cfg.probes.tasks) == ["shapes_det", "shapes_seg", *VIDEO_TASKS]  # the run's config as it was

    video = compose_cfg(*TINY_TEST, "probes=fast", "data.mix=video")
    assert trained_tasks(video.probes, video)[1] == ["shapes_seg", "shapes_det"]
    for keep in (["data.mix=joint"], ["data.mix=image", "model.tokenizer=shared3d"],
                 ["data.mix=image", "probes.untrained_modality=probe"]):
        c = compose_cfg(*TINY_TEST, "probes=fast", *keep)
        kept, dropped = trained_tasks(c.probes, c)
        assert dropped == [] and sorted(kept.tasks) == sorted(c.probes.tasks), keep


def test_an_unknown_untrained_modality_setting_is_refused_by_the_config_check(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "probes=fast", "probes.untrained_modality=sometimes")
    with pytest.raises(ConfigError, match="probes.untrained_modality must be skip or probe"):
        check_config(cfg)


def test_an_image_run_and_its_random_init_probe_run_no_video_task(compose_cfg, tmp_path):
    from vjepa.evaluate import evaluate
    from vjepa.runfiles import read_json
    from vjepa.trainer import Trainer

    run_dir = tmp_path / "run"
    cfg = compose_cfg(*TINY_TEST, "probes=fast", "data.mix=image", "steps=2", run_dir=run_dir)
    Trainer(cfg).run()
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["probe/untrained_skipped"] == VIDEO_TASKS
    assert "probe/shapes_seg/miou" in metrics
    assert not [k for k in metrics if k.startswith(tuple(f"probe/{t}/" for t in VIDEO_TASKS))]
    assert "probe/skipped" not in metrics  # not "skipped for want of data"
    assert OmegaConf.load(run_dir / "config.yaml").probes.tasks.keys() >= set(VIDEO_TASKS)

    random = evaluate(run_dir, baseline="only", threads=1)
    assert "probe_random/shapes_seg/miou" in random
    assert not [k for k in random if "video" in k]
