"""Which probe tasks a run's encoder can be probed with: the modality a run never trained is left out.

With ``model.tokenizer: separate`` (a 2-D patch embedding for images and a 3-D one for clips, as V-JEPA 2.1),
a run on one modality leaves the other's tokenizer and modality embedding at initialisation, so probes of that
modality measure a random tokenizer, not the ablation. The shared 3-D tokenizer trains on images too (repeated
frames), so every task is kept. ``probes.untrained_modality``: ``skip`` (default: the tasks are not run) or
``probe`` (run them anyway; analysis leaves their scores out of the ablation tables either way).
"""

from __future__ import annotations

from omegaconf import OmegaConf

VIDEO_DATA = ("moving_mnist", "moving_shapes", "video_list")  # data specs whose samples are clips


def untrained_modality(tokenizer, mix) -> str | None:
    """The modality ("image" or "video") whose tokenizer a run with ``model.tokenizer`` and ``data.mix``
    never trained; None where it trained both (a shared tokenizer, or the joint mix)."""
    if tokenizer != "separate":
        return None
    return {"image": "video", "video": "image"}.get(mix)


def task_modality(task) -> str:
    """"video" for a task on clips, else "image"."""
    return "video" if task["data"]["name"] in VIDEO_DATA else "image"


def trained_tasks(probes_cfg, run_cfg) -> tuple[object, list[str]]:
    """(``probes_cfg`` without the tasks of the modality the run never trained, their names). Unchanged
    where the run trained every modality or ``probes_cfg.untrained_modality`` is ``probe``; a value other
    than skip | probe is refused."""
    if probes_cfg is None or not probes_cfg.get("tasks"):
        return probes_cfg, []
    how = probes_cfg.get("untrained_modality", "skip")
    if how not in ("skip", "probe"):
        raise ValueError(f"probes.untrained_modality must be skip or probe, got {how!r}")
    untrained = untrained_modality(
        OmegaConf.select(run_cfg, "model.tokenizer"), OmegaConf.select(run_cfg, "data.mix")
    )
    if how == "probe" or untrained is None:
        return probes_cfg, []
    dropped = [name for name, task in probes_cfg.tasks.items() if task_modality(task) == untrained]
    if not dropped:
        return probes_cfg, []
    kept = OmegaConf.create(OmegaConf.to_container(probes_cfg, resolve=True))
    for name in dropped:
        del kept.tasks[name]
    return kept, dropped
