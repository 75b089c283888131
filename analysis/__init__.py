"""Analysis of finished runs: run directories -> tidy tables -> reports.

Data flows one way: config -> engine -> run directory -> analysis -> reports. This package only reads run
directories (it never trains and the engine never imports it):

    python -m analysis.collect sweeps_out --out reports/results.csv --curves reports/curves
    python -m analysis.report --results reports/results.csv --out reports/

``collect`` also extracts the small arrays the pictures need (``reports/data/*.npz``) from the checkpoints,
so ``report`` regenerates every table, figure and picture from ``reports/`` alone.

Modules: ``collect`` (run dirs -> DataFrames), ``paper`` (the paper's numbers as data), ``ablations`` (which
sweep is which paper table, and which toolkit metric stands in for which paper metric), ``tables``
(per-variant statistics and agreement with the paper), ``directions`` (each ingredient's change vs. the
paper's, paired by seed), ``plots``, ``pictures`` (masks and PCA maps),
``report`` (everything in ``reports/``).
"""
