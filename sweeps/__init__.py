"""Ablation sweeps and hyper-parameter search on top of the vjepa engine (the engine never imports this)."""
