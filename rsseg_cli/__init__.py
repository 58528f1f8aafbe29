"""rsseg: semi-supervised semantic segmentation of GeoTIFF scenes with vision foundation models."""

__version__ = "0.1.0"
