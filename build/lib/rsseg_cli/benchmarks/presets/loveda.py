"""LoveDA: the Co2S prepared layout (3771 train / 420 val 1024 px PNGs renumbered from the official Train and
Val sets, labels 1..7 with 0 no-data, reduce-zero-label) or the official Zenodo release (Train|Val/Urban|Rural,
same numbering and values; its folders give the split). The Co2S lists apply to both: they name images by
number."""

from rsseg_cli.benchmarks.layouts import CO2S, LOVEDA_OFFICIAL
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="loveda",
    title="LoveDA",
    layouts=(CO2S, LOVEDA_OFFICIAL),
    lists="co2s/loveda",
    recipe="co2s/loveda.yaml",
    conversion="reduce-zero-label",
    protocol="co2s",
    test_is_val=True,
)
