"""DeepGlobe Land Cover in DWL's prepared layout (RS-MTDF's protocol): 512 px crops of the 2448 px images,
data_cropped/<id>_sat_<k>.jpg with <id>_mask_<k>.png holding class ids 0..6. Class 6, 'unknown', is ignored
(rsseg's DeepGlobe recipe: neither trained nor scored; the DWL mIoU leaves it out too)."""

from rsseg_cli.benchmarks.layouts import DWL_DEEPGLOBE
from rsseg_cli.benchmarks.preset import Preset

PRESET = Preset(
    name="deepglobe",
    title="DeepGlobe Land Cover (DWL crops)",
    layouts=(DWL_DEEPGLOBE,),
    lists="rs-mtdf/deepglobe",
    recipe="rs-mtdf/deepglobe.yaml",
    conversion="identity",
    protocol="dwl",
    ignore_values=(6, 255),
)
