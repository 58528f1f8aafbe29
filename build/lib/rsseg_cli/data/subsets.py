"""The labeled subset of a run: `--labeled 1/8 | 10% | N`, drawn from the training split, seeded and stratified,
and the split files (splits/labeled.txt, splits/unlabeled.txt) that let a run's split be reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsseg_cli.atomic import atomic_file
from rsseg_cli.config_layers import LabeledSpec
from rsseg_cli.config_layers import parse_labeled as parse_labeled  # re-exported: the --labeled forms
from rsseg_cli.errors import UserError


def select_labeled(candidates: pd.DataFrame, spec: LabeledSpec, seed: int, num_classes: int) -> list[str]:
    """Pick the labeled chips: every class covered by at least one chip where the budget allows (rarest
    class first), the rest uniformly at random; the same seed gives the same subset."""
    n = len(candidates)
    if n == 0:
        raise UserError(
            "The training split has no labeled chip. Tile scenes with labels, or check the split."
        )
    k = spec.count if spec.count is not None else round(spec.ratio * n)
    if k < 1:
        raise UserError(
            f"--labeled {spec} of {n} labeled training chips leaves no labeled chip. Use a larger ratio "
            f"(at least 1/{n}) or a number of chips."
        )
    if k > n:
        raise UserError(f"--labeled asks for {k} chips but the training split has only {n} labeled chips.")
    rng = np.random.default_rng(seed)
    ids = candidates["id"].to_numpy()
    present = np.stack([candidates[f"px_{c}"].to_numpy() > 0 for c in range(num_classes)], axis=1)
    order = rng.permutation(n)
    chosen: list[int] = []
    taken = np.zeros(n, bool)
    for c in np.argsort(present.sum(axis=0), kind="stable"):
        if len(chosen) == k:
            break
        if present[taken, c].any() or not present[:, c].any():
            continue
        pick = next(i for i in order if present[i, c] and not taken[i])
        chosen.append(int(pick))
        taken[pick] = True
    for i in order:
        if len(chosen) == k:
            break
        if not taken[i]:
            chosen.append(int(i))
            taken[i] = True
    return sorted(ids[chosen].tolist())


def write_split_files(folder: Path, labeled: list[str], unlabeled: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, ids in (("labeled.txt", labeled), ("unlabeled.txt", unlabeled)):
        with atomic_file(folder / name) as tmp:
            tmp.write_text("".join(f"{i}\n" for i in ids))


def read_split_file(path: Path, known: set[str]) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"The split file {path} does not exist. Pass a labeled.txt written by an earlier run."
        )
    ids = [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UserError(
            f"The split file {path} names {len(unknown)} chips that are not labeled training chips of this "
            f"dataset (first: {', '.join(unknown[:3])}). Use a split file made for this dataset."
        )
    if not ids:
        raise UserError(f"The split file {path} lists no chip.")
    return ids
