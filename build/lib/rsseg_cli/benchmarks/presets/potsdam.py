"""ISPRS Potsdam in the Co2S prepared layout: 512 px PNG crops `<tile>_<x0>_<y0>_<x1>_<y1>.png`, labels 1..6
(impervious surface, building, low vegetation, tree, car, clutter) with 0 ignored (reduce-zero-label)."""

from rsseg_cli.benchmarks.layouts import CO2S
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="potsdam",
    title="Potsdam (Co2S crops)",
    layouts=(CO2S,),
    lists="co2s/potsdam",
    recipe="co2s/potsdam.yaml",
    conversion="reduce-zero-label",
    protocol="co2s",
    test_is_val=True,
)
