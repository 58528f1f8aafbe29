"""Where a benchmark's images and labels sit in its prepared folder, and which label goes with which image.

Each layout lists the image/label pairs of a source folder with one directory listing per folder (nothing is
opened: 40,000 images take well under a second), and names what is missing in a wrong or partial folder. Paths
are relative to the source folder, in POSIX form, as the papers' split lists write them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rsseg_cli.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class Pair:
    image: str  # relative to the source folder
    label: str
    split: str | None = None  # the split the layout itself gives (LoveDA's Train/Val folders), else None
    scene: str = ""  # a group name (LoveDA: Train/Urban)


def chip_id(image: str) -> str:
    """The chip id of an image path: its file stem (unique within every benchmark; the lists' key)."""
    return PurePosixPath(image).stem


def _files(folder: Path) -> dict[str, str]:
    """stem -> file name of the image-like files of a folder."""
    try:
        entries = [e.name for e in os.scandir(folder) if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {Path(n).stem: n for n in sorted(entries) if Path(n).suffix.lower() in IMAGE_SUFFIXES}


class Layout:
    """A prepared layout: `name`, the folders it needs, a drawing of it for messages, and its pairs."""

    name: str = ""
    folders: tuple[str, ...] = ()
    drawing: str = ""

    def matches(self, src: Path) -> bool:
        return all((src / f).is_dir() for f in self.folders)

    def check(self, src: Path, benchmark: str) -> None:
        missing = [f for f in self.folders if not (src / f).is_dir()]
        if missing:
            raise UserError(
                f"{src} does not look like the {benchmark} dataset: the folder(s) {', '.join(missing)} are "
                f"missing. The expected layout is:\n{self.drawing}\nPoint rsseg prepare at the folder that "
                "holds them."
            )

    def pairs(self, src: Path) -> tuple[list[Pair], list[str]]:
        """(image/label pairs, images without a label)."""
        raise NotImplementedError


class SideBySide(Layout):
    """Images in one folder, labels of the same stem in another (Co2S: images/, labels/; the DWL Potsdam
    crops: image/top_potsdam_<k>_RGB.tif with label/top_potsdam_<k>_label.tif)."""

    def __init__(self, name: str, images: str, labels: str, drawing: str, rename: tuple[str, str] = ("", "")):
        self.name, self.images, self.labels = name, images, labels
        self.folders = (images, labels)
        self.drawing = drawing
        self.rename = rename  # (image stem suffix, label stem suffix), e.g. ('_RGB', '_label')

    def label_stem(self, image_stem: str) -> str:
        old, new = self.rename
        return image_stem[: -len(old)] + new if old and image_stem.endswith(old) else image_stem

    def pairs(self, src: Path) -> tuple[list[Pair], list[str]]:
        images, labels = _files(src / self.images), _files(src / self.labels)
        found, lonely = [], []
        for stem, name in images.items():
            label = labels.get(self.label_stem(stem))
            if label is None:
                lonely.append(f"{self.images}/{name}")
            else:
                found.append(Pair(f"{self.images}/{name}", f"{self.labels}/{label}"))
        return found, lonely


class OneFolder(Layout):
    """Images and labels in one folder, told apart by a name pattern (DWL's DeepGlobe crops:
    data_cropped/<id>_sat_<k>.jpg with data_cropped/<id>_mask_<k>.png)."""

    def __init__(self, name: str, folder: str, image_tag: str, label_tag: str, drawing: str):
        self.name, self.folder = name, folder
        self.folders = (folder,)
        self.drawing = drawing
        self.image_tag, self.label_tag = image_tag, label_tag
        self.pattern = re.compile(rf"^(.+){re.escape(image_tag)}(.*)$")

    def pairs(self, src: Path) -> tuple[list[Pair], list[str]]:
        files = _files(src / self.folder)
        found, lonely = [], []
        for stem, name in files.items():
            m = self.pattern.match(stem)
            if not m:
                continue
            label = files.get(f"{m.group(1)}{self.label_tag}{m.group(2)}")
            if label is None:
                lonely.append(f"{self.folder}/{name}")
            else:
                found.append(Pair(f"{self.folder}/{name}", f"{self.folder}/{label}"))
        return found, lonely


class LoveDAOfficial(Layout):
    """The official LoveDA release (Zenodo 5706578, Train.zip and Val.zip unpacked):
    Train|Val/Urban|Rural/images_png/<n>.png with masks_png/<n>.png; the folder gives the split."""

    name = "loveda-official"
    folders = ("Train", "Val")
    drawing = (
        "  SRC/Train/Urban/images_png/*.png   SRC/Train/Urban/masks_png/*.png\n"
        "  SRC/Train/Rural/images_png/*.png   SRC/Train/Rural/masks_png/*.png\n"
        "  SRC/Val/Urban/...                  SRC/Val/Rural/..."
    )

    def matches(self, src: Path) -> bool:
        return any((src / s).is_dir() for s in self.folders)

    def check(self, src: Path, benchmark: str) -> None:
        super().check(src, benchmark)
        needed = [
            f"{s}/{d}/{k}"
            for s in self.folders
            for d in ("Urban", "Rural")
            for k in ("images_png", "masks_png")
        ]
        missing = [f for f in needed if not (src / f).is_dir()]
        if missing:
            raise UserError(
                f"{src} is an incomplete LoveDA release: {', '.join(missing)} missing. Unpack both Train.zip "
                f"and Val.zip there; the expected layout is:\n{self.drawing}"
            )

    def pairs(self, src: Path) -> tuple[list[Pair], list[str]]:
        found, lonely = [], []
        for split in self.folders:
            for domain in ("Urban", "Rural"):
                base = f"{split}/{domain}"
                masks = _files(src / base / "masks_png")
                for stem, name in _files(src / base / "images_png").items():
                    if stem in masks:
                        found.append(
                            Pair(
                                f"{base}/images_png/{name}",
                                f"{base}/masks_png/{masks[stem]}",
                                split.lower(),
                                base,
                            )
                        )
                    else:
                        lonely.append(f"{base}/images_png/{name}")
        return found, lonely


CO2S = SideBySide(
    "co2s",
    "images",
    "labels",
    "  SRC/images/<name>.<png|jpg|tif>   SRC/labels/<name>.<png|tif>   (the Co2S prepared layout, as on the\n"
    "  Hugging Face dataset XavierJiezou/co2s-datasets, one folder per benchmark)",
)
DWL_POTSDAM = SideBySide(
    "dwl-potsdam",
    "image",
    "label",
    "  SRC/image/top_potsdam_<tile>_<k>_RGB.tif   SRC/label/top_potsdam_<tile>_<k>_label.tif   (DWL's crops)",
    rename=("_RGB", "_label"),
)
DWL_DEEPGLOBE = OneFolder(
    "dwl-deepglobe",
    "data_cropped",
    "_sat",
    "_mask",
    "  SRC/data_cropped/<id>_sat_<k>.jpg   SRC/data_cropped/<id>_mask_<k>.png   (DWL's crops)",
)
LOVEDA_OFFICIAL = LoveDAOfficial()
