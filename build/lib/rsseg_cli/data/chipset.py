"""Chip datasets for training and validation, read from a dataset folder written by `rsseg tile`.

Each sample's randomness comes from a generator seeded by (seed, epoch, index), so a run gives the same
batches whatever the number of loader workers, and a resumed run continues with the very same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
from torch.utils.data import Dataset

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.config_rescale import RescaleConfig
from rsseg_cli.data.augment import cutmix_box, strong_view, weak_view
from rsseg_cli.data.classes import ValueMap
from rsseg_cli.data.dataset_check import chip_root, report_damaged_chips
from rsseg_cli.data.manifest import read_dataset
from rsseg_cli.data.normalize import Normalization


@dataclass
class ChipDataset:
    """A dataset folder: its metadata and chip table."""

    root: Path
    meta: dict
    chips: pd.DataFrame

    @classmethod
    def open(cls, root: Path) -> ChipDataset:
        meta, chips = read_dataset(root)
        return cls(Path(root), meta, chips)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.meta["classes"]]

    @property
    def num_classes(self) -> int:
        return len(self.meta["classes"])

    @property
    def band_names(self) -> list[str]:
        return [b["name"] for b in self.meta["bands"]]

    @property
    def files_root(self) -> Path:
        """The folder chip paths are relative to (a prepared benchmark's images stay in its own folder)."""
        return chip_root(self.root, self.meta)

    @property
    def label_map(self) -> ValueMap | None:
        """Raw label value -> class id for chips whose labels hold the source's values (a prepared benchmark,
        e.g. reduce-zero-label); None when chip labels already hold class ids (`rsseg tile`)."""
        encoding = self.meta.get("label_encoding") or {}
        if encoding.get("kind") != "values":
            return None
        classes = self.meta["classes"]
        values = [c["id"] if c.get("value") is None else int(c["value"]) for c in classes]
        return ValueMap.build(values, [c["id"] for c in classes], encoding.get("ignore_values", []))

    def split(self, name: str, labeled: bool | None = None) -> pd.DataFrame:
        rows = self.chips[self.chips["split"] == name]
        if labeled is not None:
            rows = rows[rows["labeled"].astype(bool) == labeled]
        return rows

    def rows(self, ids: list[str]) -> pd.DataFrame:
        return self.chips.set_index("id").loc[ids].reset_index()


def read_image(root: Path, row, norm: Normalization) -> tuple[torch.Tensor, torch.Tensor]:
    """(image in [0, 1] (C, H, W), invalid (H, W) bool). Invalid pixels (the chip's mask, and NaN or infinite
    values in any band, which a float scene may hold even where it declares no nodata) take the band mean, 0
    after standardization, as in prediction (Normalization.model_input): no NaN reaches the model, and the weak
    view's bilinear rescale, which runs before standardization, cannot spread one."""
    with rasterio.open(root / row.image) as src:
        raw = src.read()
        invalid = src.dataset_mask() == 0
    if raw.dtype.kind == "f":
        invalid |= ~np.isfinite(raw).all(axis=0)
    image = norm.stretch(raw)
    if invalid.any():
        mean = torch.tensor(norm.mean, dtype=image.dtype).view(-1, 1)
        image[:, torch.from_numpy(invalid)] = mean
    return image, torch.from_numpy(invalid)


def read_chip(
    root: Path, row, norm: Normalization, label_map: ValueMap | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(image in [0, 1] (C, H, W), invalid (H, W) bool, mask (H, W) int64 or None); invalid pixels and label
    pixels that are not finite are IGNORE_INDEX in the mask. `label_map` turns raw label values into class
    ids (ChipDataset.label_map)."""
    image, invalid = read_image(root, row, norm)
    mask = None
    if row.label:
        with rasterio.open(root / row.label) as src:
            values = src.read(1)
        if label_map is not None:
            values = label_map(values)
        elif values.dtype.kind == "f":
            finite = np.isfinite(values)
            values = np.where(finite, values, IGNORE_INDEX)
        mask = torch.from_numpy(values.astype(np.int64))
        mask[invalid] = IGNORE_INDEX
    return image, invalid, mask


class _Chips(Dataset):
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        report_damaged_chips(cls)  # a chip that cannot be read: a UserError naming it, also from a worker

    def __init__(self, data: ChipDataset, ids: list[str], norm: Normalization, seed: int = 0):
        self.root = data.files_root
        self.label_map = data.label_map
        self.rows = list(data.rows(ids).itertuples()) if ids else []
        self.norm = norm
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self, index: int, epoch: int | None = None) -> torch.Generator:
        epoch = self.epoch if epoch is None else epoch
        return torch.Generator().manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)

    def _key(self, key: int | tuple[int, int]) -> tuple[int, int]:
        """(epoch, index) from a sampler key, or the dataset's current epoch for a plain index."""
        return key if isinstance(key, tuple) else (self.epoch, key)


class LabeledTrain(_Chips):
    """Weak view of a labeled chip: {'image': model input (C, S, S), 'mask': (S, S)}; `rescale` is
    train.rescale (default: a ratio U(0.5, 2) of the chip's size)."""

    def __init__(
        self,
        data: ChipDataset,
        ids: list[str],
        norm: Normalization,
        crop: int,
        seed: int = 0,
        rescale: RescaleConfig | None = None,
    ):
        super().__init__(data, ids, norm, seed)
        self.crop = crop
        self.rescale = rescale

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = self._key(key)
        image, invalid, mask = read_chip(self.root, self.rows[index], self.norm, self.label_map)
        assert mask is not None, "labeled chip without a label file"
        image, mask, _ = weak_view(
            image, mask, invalid, self.crop, self.generator(index, epoch), self.rescale
        )
        return {"image": self.norm.standardize(image), "mask": mask}


class UnlabeledTrain(_Chips):
    """A weak view, two strong views and two CutMix boxes of an unlabeled chip (its label is never read); the
    weak view rescales as LabeledTrain's."""

    def __init__(
        self,
        data: ChipDataset,
        ids: list[str],
        norm: Normalization,
        crop: int,
        rgb: tuple[int, int, int] | None,
        seed: int = 0,
        rescale: RescaleConfig | None = None,
    ):
        super().__init__(data, ids, norm, seed)
        self.crop = crop
        self.rgb = rgb
        self.rescale = rescale

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = self._key(key)
        image, invalid = read_image(self.root, self.rows[index], self.norm)
        g = self.generator(index, epoch)
        placeholder = torch.zeros(invalid.shape, dtype=torch.int64)
        weak, _, ignore = weak_view(image, placeholder, invalid, self.crop, g, self.rescale)
        strong1, strong2 = strong_view(weak, self.rgb, g), strong_view(weak, self.rgb, g)
        return {
            "weak": self.norm.standardize(weak),
            "strong1": self.norm.standardize(strong1),
            "strong2": self.norm.standardize(strong2),
            "ignore": ignore,
            "box1": cutmix_box(self.crop, g),
            "box2": cutmix_box(self.crop, g),
        }


class EvalChips(_Chips):
    """Whole chips, unaugmented: {'image': (C, H, W), 'mask': (H, W), 'index': int}."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, _, mask = read_chip(self.root, self.rows[index], self.norm, self.label_map)
        assert mask is not None
        return {"image": self.norm.standardize(image), "mask": mask, "index": torch.tensor(index)}
