"""ISPRS Potsdam in DWL's prepared layout (RS-MTDF's protocol): 512 px crops of the 6000 px tiles,
image/top_potsdam_<tile>_<k>_RGB.tif with label/top_potsdam_<tile>_<k>_label.tif holding class ids 0..5; the
DWL mIoU leaves clutter out of the mean."""

from rsseg_cli.benchmarks.layouts import DWL_POTSDAM
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="potsdam-dwl",
    title="Potsdam (DWL crops)",
    layouts=(DWL_POTSDAM,),
    lists="rs-mtdf/Potsdam",
    recipe="rs-mtdf/potsdam.yaml",
    conversion="identity",
    protocol="dwl",
    exclude_classes=("clutter",),
)
