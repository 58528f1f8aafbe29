"""Miniature public benchmarks in their exact published layouts, for `rsseg prepare` tests.

File names come from the shipped split lists (rsseg_cli.benchmarks.lists), formats follow the file names (JPG /
PNG / TIF), and labels hold the benchmark's own raw values (random blobs, incl. the values that mean 'ignore'),
so a test can convert a raw label by hand and compare it with what prepare + read_chip give.

    make_fixture("whdld", tmp_path / "whdld")          # a few entries of val and of one ratio's lists
    make_fixture("mer", tmp_path / "mer", full=True)    # every file MER's lists name (1064 images)
    make_fixture("loveda-official", tmp_path / "lo")    # the Zenodo layout: Train|Val/Urban|Rural/...
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import rasterio
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from rsseg_cli.benchmarks.lists import has_list, read_list


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark is laid out and labeled (the contract of `rsseg prepare NAME`)."""

    prepare_name: str  # NAME given to `rsseg prepare`
    lists: str  # folder of its split lists inside splits.zip ('' for the official LoveDA layout)
    ratio: str  # the ratio whose labeled/unlabeled lists a miniature fixture samples
    raw_values: tuple[int, ...]  # raw label values the benchmark's labels hold (incl. 'ignore' ones)
    reduce_zero_label: bool  # 0 -> ignore, k -> k - 1
    ignored: tuple[int, ...] = ()  # raw values besides 255 (and 0 with reduce_zero_label) that are ignored
    classes: tuple[str, ...] = ()

    def convert(self, raw: np.ndarray) -> np.ndarray:
        """The class ids (255 = ignore) a raw label must read back as, computed independently of rsseg."""
        raw = raw.astype(np.int64)
        out = raw - 1 if self.reduce_zero_label else raw.copy()
        ignore = raw == 255
        if self.reduce_zero_label:
            ignore |= raw == 0
        for value in self.ignored:
            ignore |= raw == value
        out[ignore] = 255
        return out


POTSDAM = ("impervious surface", "building", "low vegetation", "tree", "car", "clutter")
MARS = ("martian soil", "sands", "gravel", "bedrock", "rocks", "tracks", "shadows", "unknown", "background")
GID15 = (
    "industrial land",
    "urban residential",
    "rural residential",
    "traffic land",
    "paddy field",
    "irrigated land",
    "dry cropland",
    "garden plot",
    "arbor woodland",
    "shrub land",
    "natural grassland",
    "artificial grassland",
    "river",
    "lake",
    "pond",
)
LOVEDA = ("background", "building", "road", "water", "barren", "forest", "agriculture")

# Class names as the papers' code lists them (Co2S datasets/classes.py; DeepGlobe's land cover classes), in
# lower case with spaces: tests compare names normalized the same way.
BENCHMARKS: dict[str, Benchmark] = {
    "whdld": Benchmark(
        "whdld",
        "co2s/whdld",
        "1_8",
        tuple(range(7)),
        True,
        classes=("building", "road", "pavement", "vegetation", "bare soil", "water"),
    ),
    "loveda": Benchmark("loveda", "co2s/loveda", "1_8", tuple(range(8)), True, classes=LOVEDA),
    "potsdam": Benchmark("potsdam", "co2s/potsdam", "1_8", tuple(range(7)), True, classes=POTSDAM),
    "gid15": Benchmark("gid15", "co2s/gid", "1_8", tuple(range(15)), False, classes=GID15),
    "mer": Benchmark("mer", "co2s/mer", "1_8", tuple(range(9)), False, classes=MARS),
    "msl": Benchmark("msl", "co2s/msl", "1_8", tuple(range(9)), False, classes=MARS),
    "potsdam-dwl": Benchmark("potsdam-dwl", "rs-mtdf/Potsdam", "5", tuple(range(6)), False, classes=POTSDAM),
    "deepglobe": Benchmark(
        "deepglobe",
        "rs-mtdf/deepglobe",
        "5",
        tuple(range(7)),
        False,
        ignored=(6,),  # 'unknown', excluded from the paper's numbers
        classes=("urban", "agriculture", "rangeland", "forest", "water", "barren"),
    ),
    "loveda-official": Benchmark("loveda", "", "", tuple(range(8)), True, classes=LOVEDA),
}

# The official LoveDA numbering: Train holds 0..2521 (Rural first), Val 2522..4190.
_LOVEDA_OFFICIAL_FIRST = {("Train", "Rural"): 0, ("Train", "Urban"): 1366, ("Val", "Rural"): 2522,
                          ("Val", "Urban"): 3514}  # fmt: skip


def blobs(rng: np.random.Generator, size: int, values: tuple[int, ...], block: int = 4) -> np.ndarray:
    """A (size, size) uint8 label of square blobs of `values`, plus a few 255 pixels (ignored everywhere)."""
    cells = -(-size // block)
    coarse = rng.choice(np.asarray(values, dtype=np.uint8), size=(cells, cells))
    coarse.flat[: len(values)] = values[
        : coarse.size
    ]  # every value at least once, so each conversion rule is exercised
    label = np.kron(coarse, np.ones((block, block), dtype=np.uint8))[:size, :size].copy()
    label[rng.integers(0, size), rng.integers(0, size)] = 255
    return label


def smooth_rgb(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8 gradients plus a little noise: real-looking enough, tiny on disk."""
    rows, cols = np.mgrid[0:size, 0:size]
    base = rng.integers(0, 128, size=3)
    rgb = np.stack([(base[b] + rows * (b + 1) + cols * (3 - b)) % 256 for b in range(3)], axis=-1)
    return (rgb + rng.integers(0, 8, size=rgb.shape)).clip(0, 255).astype(np.uint8)


def _write_tif(path: Path, bands: np.ndarray) -> None:
    """(count, h, w) uint8 as a TIFF without georeferencing, as the published crops are."""
    profile = dict(driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # rasterio's note on every such file
        with rasterio.open(path, "w", dtype="uint8", **profile) as dst:
            dst.write(bands)


def write_image(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        _write_tif(path, np.moveaxis(rgb, -1, 0))
    else:
        Image.fromarray(rgb, "RGB").save(path, quality=95)


def write_label(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        _write_tif(path, label[None])
    else:
        Image.fromarray(label, "L").save(path)


def _list_entries(spec: Benchmark, per_list: int, full: bool) -> dict[str, list[tuple[str, str]]]:
    """(image, label) pairs by role: val, test, labeled, unlabeled; all of every list with full=True."""
    family = spec.lists
    roles = {"val": f"{family}/val.txt", "test": f"{family}/test.txt"}
    if full:
        ratios = {PurePosixPath(n).parent.name for n in _ratio_lists(family)}
        for ratio in sorted(ratios):
            roles[f"labeled {ratio}"] = f"{family}/{ratio}/labeled.txt"
            roles[f"unlabeled {ratio}"] = f"{family}/{ratio}/unlabeled.txt"
    else:
        roles["labeled"] = f"{family}/{spec.ratio}/labeled.txt"
        roles["unlabeled"] = f"{family}/{spec.ratio}/unlabeled.txt"
    entries: dict[str, list[tuple[str, str]]] = {}
    for role, name in roles.items():
        if has_list(name):
            lines = read_list(name)
            entries[role] = [(line[0], line[1]) for line in (lines if full else lines[:per_list])]
    return entries


def _ratio_lists(family: str) -> list[str]:
    from rsseg_cli.benchmarks.lists import list_names

    return [n for n in list_names(f"{family}/") if n.count("/") == 3]


def _expected_split(role: str) -> str:
    return role if role in ("val", "test") else "train"


def _official_entries(per_list: int) -> list[tuple[str, str, str]]:
    """(image, label, expected split) of the official LoveDA layout: numbers as names."""
    out = []
    for (part, domain), first in _LOVEDA_OFFICIAL_FIRST.items():
        for n in range(first, first + per_list):
            folder = f"{part}/{domain}"
            out.append((f"{folder}/images_png/{n}.png", f"{folder}/masks_png/{n}.png", part.lower()))
    return out


def make_fixture(
    name: str, root: Path, *, per_list: int = 2, size: int = 32, seed: int = 0, full: bool = False
):
    """Write a miniature `name` benchmark under `root` (its SRC folder) and say what was written.

    name: a key of BENCHMARKS ('whdld', 'loveda', 'potsdam', 'gid15', 'mer', 'msl', 'potsdam-dwl', 'deepglobe',
    or 'loveda-official' for the Zenodo layout, prepared as 'loveda'). Returns a dict:
      name: the NAME to pass to `rsseg prepare`;  src: root;  spec: the Benchmark (spec.convert(raw));
      chips: {id (the image's stem): {'image', 'label' (paths relative to root), 'split' (expected), 'raw'
      (the label array as written), 'roles' (the lists naming it)}};
      lists: {role: [ids]} for the roles written (val, test, labeled, unlabeled, or 'labeled 1_8' with full).
    """
    spec = BENCHMARKS[name]
    rng = np.random.default_rng(seed)
    root = Path(root)
    chips: dict[str, dict] = {}
    lists: dict[str, list[str]] = {}
    if not spec.lists:
        rows = [(image, label, split, split) for image, label, split in _official_entries(per_list)]
    else:
        rows = [
            (image, label, _expected_split(role.split()[0]), role)
            for role, pairs in _list_entries(spec, per_list, full).items()
            for image, label in pairs
        ]
    for image, label, split, role in rows:
        chip_id = PurePosixPath(image).stem
        lists.setdefault(role, []).append(chip_id)
        if chip_id in chips:  # full fixtures: one image is in several ratios' lists
            chips[chip_id]["roles"].append(role)
            continue
        raw = blobs(rng, size, spec.raw_values)
        write_image(root / image, smooth_rgb(rng, size))
        write_label(root / label, raw)
        chips[chip_id] = {"image": image, "label": label, "split": split, "raw": raw, "roles": [role]}
    return {"name": spec.prepare_name, "src": root, "spec": spec, "chips": chips, "lists": lists}
