"""The parts of pretraining that ``vjepa.trainer.Trainer`` ties together, one job each:

- ``rundir``: the run directory's identity (a rerun must be the same experiment in the same arithmetic),
  its config.yaml and its status.json;
- ``step``: one optimisation step on one batch whose masks are given (schedules, forward, backward,
  gradient averaging, AdamW, EMA of the target encoder);
- ``records``: the checkpoint and the metrics (a logging window's line, the final numbers);
- ``loop``: the step loop (log, checkpoint, stop at a step boundary).

The masks a step trains on are drawn by ``vjepa.masks.RunMasks``.
"""
