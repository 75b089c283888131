"""The random streams of a run never share a generator.

``step_generator(seed, step, stream)`` seeds with ``(seed * 1_000_003 + step) * 101 + stream``, so two
streams in use must differ modulo 101, else one is the other shifted by a whole number of steps (mask setting
1's stream 1011 was stream 1 at step + 10: the synthetic shapes of ten steps later)."""

import itertools

import pytest

from vjepa.data import (
    MOVING_SHAPES_STREAM,
    SHAPES_STREAM,
    hashed_generator,
    images,
    moving_mnist,
    step_generator,
    video,
)
from vjepa.probes import datasets as probe_data
from vjepa.trainer import DROP_PATH_STREAM, MASK_STREAM, mask_generator

# every step_generator stream of pretraining: per-step data, per-epoch orders, drop-path, masks 0 and 1
LINEAR_STREAMS = {
    "images": images.STREAM,
    "images order": images.PERM_STREAM,
    "video": video.STREAM,
    "video order": video.PERM_STREAM,
    "moving mnist": moving_mnist.STREAM,
    "moving mnist order": moving_mnist.PERM_STREAM,
    "shapes": SHAPES_STREAM,
    "moving shapes": MOVING_SHAPES_STREAM,
    "drop-path": DROP_PATH_STREAM,
    **{f"{m} mask {k}": MASK_STREAM[m] + 1000 * k for m in MASK_STREAM for k in (0, 1)},
}


def test_linear_streams_differ_modulo_101():
    residues = {}
    for name, stream in LINEAR_STREAMS.items():
        assert stream % 101 not in residues, f"{name} aliases {residues.get(stream % 101)}"
        residues[stream % 101] = name
    # the probe splits draw at step 0 with the probe's own seed, apart from pretraining
    assert {probe_data.TRAIN_STREAM, probe_data.VAL_STREAM}.isdisjoint(LINEAR_STREAMS.values())


def test_no_two_generators_of_a_run_share_a_seed():
    """All generators of 300 steps (epochs for the orders) and 6 mask settings, for two run seeds."""
    seen = {}
    for seed, step in itertools.product((0, 1), range(300)):
        keys = {(name, seed, step): step_generator(seed, step, s) for name, s in LINEAR_STREAMS.items()}
        keys.update(
            {
                (f"{m} mask {k}", seed, step): mask_generator(seed, step, m, k)
                for m in MASK_STREAM
                for k in range(6)
            }
        )
        for key, g in keys.items():
            value = g.initial_seed()
            assert seen.setdefault(value, key) == key, f"{key} and {seen[value]} share seed {value}"


def test_settings_0_and_1_keep_their_streams_and_later_ones_are_hashed():
    """Existing runs (at most 2 settings) draw the masks they always drew; setting 4's linear stream 4011
    would be stream 72 at step + 39, setting 6's video stream 6012 the images' order stream 53."""
    for m, k in itertools.product(MASK_STREAM, (0, 1)):
        assert (
            mask_generator(3, 17, m, k).initial_seed()
            == step_generator(3, 17, MASK_STREAM[m] + 1000 * k).initial_seed()
        )
    assert (MASK_STREAM["image"] + 4000) % 101 == 72 and (
        MASK_STREAM["video"] + 6000
    ) % 101 == images.PERM_STREAM
    g = mask_generator(3, 17, "video", 6)
    assert (
        g.initial_seed() >= 2**62
        and g.initial_seed() == hashed_generator(3, 17, MASK_STREAM["video"], 6).initial_seed()
    )
    assert (
        mask_generator(3, 17, "video", 6).initial_seed() != mask_generator(3, 18, "video", 6).initial_seed()
    )


@pytest.mark.parametrize("key", [(0, 0), (2**31, 10**6), (7, 3, 12, 5)])
def test_hashed_generator_is_deterministic_and_above_every_linear_seed(key):
    a, b = hashed_generator(*key), hashed_generator(*key)
    assert a.initial_seed() == b.initial_seed() >= 2**62
    assert hashed_generator(*key, 1).initial_seed() != a.initial_seed()
