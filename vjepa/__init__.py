"""vjepa: run and analyse ablations of V-JEPA 2.1 self-supervised pretraining."""

__version__ = "0.1.0"
