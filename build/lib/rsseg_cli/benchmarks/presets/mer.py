"""MER (Mars-Seg, Mars Exploration Rover images) in the Co2S prepared layout: JPG images, PNG labels 0..8 used
as they are."""

from rsseg_cli.benchmarks.layouts import CO2S
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="mer",
    title="MER",
    layouts=(CO2S,),
    lists="co2s/mer",
    recipe="co2s/mer.yaml",
    conversion="identity",
    protocol="co2s",
    test_is_val=True,
)
