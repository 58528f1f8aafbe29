"""Vectorization of predicted class masks: windowed sieve, polygonize, seam merge, measures, GPKG/GeoJSON.

`rsseg vectorize` and `rsseg predict --vector` both call vectorize_mask. Before any work, predict can call
check_vectorize_options (the options, and a class selection against the checkpoint's class table) and
check_vector_output (the output's extension, and GeoJSON's need for a CRS).
"""

from rsseg_cli.vectorize.core import DEFAULT_SIEVE, DEFAULT_WINDOW, check_vectorize_options, vectorize_mask
from rsseg_cli.vectorize.summary import VectorizeSummary, print_vectorize_summary
from rsseg_cli.vectorize.writers import check_vector_output, vector_format

__all__ = [
    "DEFAULT_SIEVE",
    "DEFAULT_WINDOW",
    "VectorizeSummary",
    "check_vector_output",
    "check_vectorize_options",
    "print_vectorize_summary",
    "vector_format",
    "vectorize_mask",
]
