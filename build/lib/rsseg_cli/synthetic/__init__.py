"""The synthetic sample scene: a deterministic multispectral GeoTIFF plus its label raster.

For the demo, the tests and the benchmarks.  The landscape (lakes and rivers, forest, grassland, bare soil,
agricultural parcels, towns with buildings and streets, a road network) is a pure function of the
arguments and of *global* pixel coordinates, rendered and written in 512 x 512 blocks on a fixed grid:

* nothing of full-scene size is ever allocated;
* the output does not depend on block order, and smooth fields are continuous across block seams;
* only small global tables (parcels, building cells, road and river polylines) live for the whole call.

Modules, in the order of the pipeline: noise (hashed value noise), spectra (class spectra, band
resampling), lines (roads, rivers), layout (the global tables), render (one block), write (the GeoTIFFs).
batches holds a seeded synthetic training batch for tests and benchmarks (it needs torch, so it is not
imported here).
"""

from __future__ import annotations

from rsseg_cli.synthetic.classes import SAMPLE_CLASSES
from rsseg_cli.synthetic.write import SampleScene, generate_sample, sample_total_blocks

__all__ = ["SAMPLE_CLASSES", "SampleScene", "generate_sample", "sample_total_blocks"]
