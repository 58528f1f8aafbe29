"""rsseg: semi-supervised semantic segmentation of GeoTIFF scenes with vision foundation models."""

import os

__version__ = "0.1.0"

# Torch's OpenMP threads (GNU libgomp) spin for milliseconds after each parallel region by default. With
# more runnable threads than cores (a shared machine, data loader workers beside the model) the spinning
# threads take the cores from the ones with work: a small model's training step was 20-30 times slower and
# burned CPU time doing nothing (measured with OMP_WAIT_POLICY unset and PASSIVE on a busy 2-core machine:
# a forward-backward pass of the demo's model took 6.9 s and 0.24 s). On idle cores passive threads only
# wake a little later.
# Set before torch loads (libgomp reads it once); an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "GOMP_SPINCOUNT" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
