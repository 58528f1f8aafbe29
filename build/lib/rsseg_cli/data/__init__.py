"""Datasets: tiling scenes into chips, class tables, splits, band statistics.

The synthetic sample scene lives in rsseg_cli.synthetic.
"""
