"""Registers sweeps.sweeper.AblationSweeper with Hydra (it instantiates sweepers from hydra_plugins only)."""

from sweeps.sweeper import AblationSweeper as _AblationSweeper


class AblationSweeper(_AblationSweeper):
    pass
