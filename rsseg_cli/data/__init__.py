"""Datasets: tiling scenes into chips, class tables, splits, band statistics, the synthetic sample scene."""
