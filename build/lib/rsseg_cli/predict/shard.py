"""Work across processes (torchrun): whole scenes go to ranks largest first, each to the least loaded rank
(longest-processing-time scheduling, deterministic so every rank computes the same plan without talking); a scene
above the split threshold is cut into its column bands (predict.stream: each band with its halo windows is
final on its own), shared out in contiguous runs, one run per rank."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """A piece of work: scene `index`, and the column bands [band0, band1) of it (None: the whole scene)."""

    index: int
    bands: tuple[int, int] | None = None


def assign(costs: list[int], world: int, split: list[int | None]) -> list[list[Part]]:
    """Parts per rank. `costs`: pixels per scene; `split[i]`: the number of column bands of scene i when it is
    split across ranks (None: predicted whole by one rank)."""
    load = [0] * world
    parts: list[list[Part]] = [[] for _ in range(world)]
    for i in (i for i, n in enumerate(split) if n is not None):
        n = split[i]
        assert n is not None
        for rank, (b0, b1) in enumerate(_runs(n, world)):
            if b1 > b0:
                parts[rank].append(Part(i, (b0, b1)))
                load[rank] += costs[i] * (b1 - b0) // n
    for i in sorted((i for i, n in enumerate(split) if n is None), key=lambda i: (-costs[i], i)):
        rank = min(range(world), key=lambda r: (load[r], r))
        parts[rank].append(Part(i))
        load[rank] += costs[i]
    return parts


def _runs(n: int, world: int) -> list[tuple[int, int]]:
    """n bands in `world` contiguous runs, sizes differing by at most one (the first ranks get the extra)."""
    base, extra = divmod(n, world)
    runs, start = [], 0
    for rank in range(world):
        size = base + (rank < extra)
        runs.append((start, start + size))
        start += size
    return runs
