"""Raster and vector I/O: window grids, scenes and masks, label rasterization, atomic outputs."""
