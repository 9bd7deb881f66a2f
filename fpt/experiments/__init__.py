"""Reproducing the paper: sweeps over tasks x conditions x lrs x seeds, ready-made grids, tables, plots."""
