"""WHDLD (Wuhan Dense Labeling Dataset) in the Co2S prepared layout: 4940 RGB JPGs of 256 px, PNG labels 1..6
with 0 unlabeled (reduce-zero-label); Co2S lists 1/32 ... 1/4, val doubles as test."""

from rsseg_cli.benchmarks.layouts import CO2S
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="whdld",
    title="WHDLD",
    layouts=(CO2S,),
    lists="co2s/whdld",
    recipe="co2s/whdld.yaml",
    conversion="reduce-zero-label",
    protocol="co2s",
    test_is_val=True,
)
