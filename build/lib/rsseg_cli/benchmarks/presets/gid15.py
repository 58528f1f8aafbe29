"""GID-15 (Gaofen Image Dataset, 15 fine land-cover classes) in the Co2S prepared layout: 512 px TIF crops with
TIF labels 0..14 used as they are."""

from rsseg_cli.benchmarks.layouts import CO2S
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="gid15",
    title="GID-15",
    layouts=(CO2S,),
    lists="co2s/gid",
    recipe="co2s/gid15.yaml",
    conversion="identity",
    protocol="co2s",
    test_is_val=True,
)
