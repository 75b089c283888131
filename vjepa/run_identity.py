"""What makes two runs the same: the keys each comparison ignores, and the hashes and differences built on them.

Two notions, each with its key list:

- *the same experiment* (``RESUME_FREE_KEYS``): a run directory may be resumed by a config that differs only in
  these (where it runs, how fast, what it probes and logs). The trainer refuses any other difference
  (``config_differences`` of ``resume_view``); ``config_hashes`` groups runs by it (analysis's config_hash).
- *the same run* (``RUN_FREE_KEYS``, a subset): two configs that differ only in these compute, measure and log
  the same numbers, wherever they ran, so a sweep may skip or adopt one for the other (``run_hash``).

Keys added to the configs after runs were made without them (``ADDED_KEYS``) count as absent at their old value,
so old run directories resume and hash as before.
"""

from __future__ import annotations

import copy
import hashlib
import json

from omegaconf import OmegaConf

from vjepa import schema

# The key lists, derived from the configuration schema (vjepa/schema.py: each key's ``free`` and ``added``):
# RESUME_FREE_KEYS may differ between the run that started a directory and the one resuming it; RUN_FREE_KEYS
# (a subset) change neither what a run computes nor what it measures and logs: two runs that differ only in
# them are the same run (sweeps skip and adopt by this; ``run_hash``).
RESUME_FREE_KEYS = schema.RESUME_FREE_KEYS
RUN_FREE_KEYS = schema.RUN_FREE_KEYS


def _parent(c: dict, key: str) -> tuple[dict | None, str]:
    """(the dict holding dotted ``key`` in config container ``c``, or None where the path does not exist;
    the key's last part)."""
    *path, last = key.split(".")
    node = c
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), last


def without_keys(c: dict, keys) -> dict:
    """``c`` (a config container, modified in place) without the given dotted keys (``run_dir``,
    ``data.root``, ...); a key whose path does not exist is ignored."""
    for key in keys:
        node, last = _parent(c, key)
        if node is not None:
            node.pop(last, None)
    return c


# Keys added to the configs after runs were made without them, with the value that reproduces what the
# code did before (the schema's ``added``): a config that sets one to this value is the same experiment as one
# that lacks it (so old run directories resume, are adopted by sweeps and hash as before).
ADDED_KEYS = schema.ADDED_KEYS


def _added_key_nodes(c: dict):
    for key, value in ADDED_KEYS.items():
        node, last = _parent(c, key)
        if node is not None:
            yield node, last, value


def without_added_defaults(c: dict) -> dict:
    """``c`` (a config container, modified in place) without the ``ADDED_KEYS`` set to their value."""
    for node, last, value in _added_key_nodes(c):
        if last in node and node[last] == value:
            del node[last]
    return c


def with_added_defaults(c: dict) -> dict:
    """``c`` (a config container, modified in place) with each missing ``ADDED_KEYS`` entry at its value."""
    for node, last, value in _added_key_nodes(c):
        node.setdefault(last, value)
    return c


def _digest(c) -> str:
    return hashlib.sha256(json.dumps(c, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def config_hashes(cfg: dict) -> tuple[str, str]:
    """(config_hash, group_hash) of a resolved config container (a run's config.yaml): sha256 (16 hex digits)
    of it without ``RESUME_FREE_KEYS`` (so without probes, log_every, diagnostics) and ``ADDED_KEYS`` at their
    old value, and of the same without the seed: equal for runs that train the same network."""
    semantic = without_added_defaults(without_keys(copy.deepcopy(cfg), RESUME_FREE_KEYS))
    return _digest(semantic), _digest(without_keys(copy.deepcopy(semantic), ["seed"]))


def run_hash(cfg: dict) -> str:
    """sha256 (16 hex digits) of a resolved config container without ``RUN_FREE_KEYS`` and ``ADDED_KEYS`` at
    their old value: equal for the same run (same training, probes, logging), wherever it ran."""
    return _digest(without_added_defaults(without_keys(copy.deepcopy(cfg), RUN_FREE_KEYS)))


def resume_view(cfg) -> dict:
    """The resolved container of config ``cfg`` as resume compares it: without ``RESUME_FREE_KEYS``, with the
    ``ADDED_KEYS`` a config lacks at their old value."""
    return with_added_defaults(without_keys(OmegaConf.to_container(cfg, resolve=True), RESUME_FREE_KEYS))


ABSENT = "<absent>"  # config_differences' default value of a key on the side that lacks it


def config_differences(old, new, missing=ABSENT, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) of every leaf where config containers ``old`` and ``new`` differ,
    by key; a key one side lacks has the value ``missing`` there (the trainer passes None: a null key and an
    absent one are the same run)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += config_differences(
                old.get(key, missing), new.get(key, missing), missing, f"{prefix}{key}."
            )
        return out
    return [] if old == new else [(prefix[:-1], old, new)]
