"""Reliability, I/O faults: damaged GeoTIFFs, full and read-only disks, --out naming a file, a memory limit.
Each case drives the real CLI and checks the exit code (2), the one-paragraph message and that nothing is
left behind: no partial file, no temporary, no empty folder made by the failed command.

Full and read-only disks are real: a tiny or read-only tmpfs mounted in a private mount namespace
(`unshare -rm`, no privileges needed) for a `python -m rsseg_cli` subprocess. Where namespaces are not
available those cases are skipped and the in-process ones (a failing write, errno ENOSPC) still run."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.commands.helpers import assert_user_error
from tests.conftest import CliResult, write_raster
from tests.helpers import TINY_TRAIN
from tests.predict.conftest import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> list[str]:
    """Everything under `folder` (hidden temporaries included)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def tiled_scene(path: Path, size: int = 256, bands: int = 3) -> Path:
    rows, cols = np.mgrid[0:size, 0:size]
    data = np.stack([(rows * 7 + cols * 3 + b * 1000) % 5000 + 1 for b in range(bands)]).astype("uint16")
    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype="uint16", crs="EPSG:32633",
                   transform=rasterio.transform.from_origin(500000.0, 5500000.0, 1.0, 1.0), tiled=True,
                   blockxsize=64, blockysize=64, compress="deflate")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the tail off a tiled GeoTIFF: the header (written first) opens, block reads fail."""
    data = path.read_bytes()
    cut = path.with_name(f"cut_{path.name}")
    cut.write_bytes(data[: int(len(data) * keep)])
    with rasterio.open(cut) as src:  # the damage this test is about: it opens
        assert src.count >= 1
    return cut


# ---------------------------------------------------------------------------------------------------------
# Damaged GeoTIFFs


def test_tile_names_a_truncated_scene(cli, tmp_path, make_scene):
    scene = make_scene(h=256, w=256)
    cut = truncate(tiled_scene(tmp_path / "tiled.tif"))
    out = tmp_path / "out"
    r = cli("tile", cut, "--labels", scene.labels, "--out", out / "data", "--chip-size", "64")
    assert_user_error(r, str(cut), "damaged", "truncated", "again")
    assert not out.exists()


def test_tile_names_a_truncated_label_raster(cli, tmp_path):
    scene = tiled_scene(tmp_path / "scene.tif")
    labels = tiled_scene(tmp_path / "labels.tif", bands=1)
    with rasterio.open(labels, "r+") as dst:  # class values 0..3, noisy so that blocks compress poorly
        dst.write((np.random.default_rng(0).integers(0, 4, (1, 256, 256))).astype("uint16"))
    cut = truncate(labels)
    out = tmp_path / "out"
    r = cli("tile", scene, "--labels", cut, "--out", out / "data", "--chip-size", "64")
    assert_user_error(r, str(cut), "damaged", "truncated")
    assert not out.exists()


def test_predict_names_a_truncated_scene(cli, tmp_path):
    cut = truncate(tiled_scene(tmp_path / "tiled.tif"))
    ckpt = save_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "out"
    r = cli("predict", cut, "--checkpoint", ckpt, "--out", out / "mask.tif", "--device", "cpu")
    assert_user_error(r, str(cut), "damaged", "truncated")
    assert leftovers(out) == []


# ---------------------------------------------------------------------------------------------------------
# A write that fails with ENOSPC (in-process: the file system call fails, as on a full disk)


@pytest.fixture
def disk_full(monkeypatch):
    """Call to make raster writes fail from then on as on a full disk: OSError ENOSPC from the write call."""

    def write(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return lambda: monkeypatch.setattr(rasterio.io.DatasetWriter, "write", write)


def test_sample_on_a_full_disk(cli, tmp_path, disk_full):
    disk_full()
    r = cli("sample", tmp_path / "new" / "sample", "--size", "64")
    assert_user_error(r, "No space left on device", str(tmp_path / "new" / "sample"), "Free some space")
    assert leftovers(tmp_path) == []  # no folder created for the failed sample


def test_tile_on_a_full_disk(cli, tmp_path, make_scene, disk_full):
    scene = make_scene(h=128, w=128)
    disk_full()
    out = tmp_path / "out"
    r = cli("tile", scene.image, "--labels", scene.labels, "--out", out / "data", "--chip-size", "64")
    assert_user_error(r, "No space left on device", str(out / "data"))
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------
# --out naming an existing file


@pytest.mark.parametrize(
    "args",
    [
        ("sample", "OUT", "--size", "64"),
        ("train", "--data", "DATA", "--labeled", "1/2", "--out", "OUT"),
        ("evaluate", "--checkpoint", "CKPT", "--data", "DATA", "--out", "OUT"),
    ],
    ids=["sample", "train", "evaluate"],
)
def test_out_is_an_existing_file(cli, tmp_path, dataset, args):
    ckpt = save_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "a_file"
    out.write_text("mine")
    subst = {"OUT": out, "DATA": dataset, "CKPT": ckpt}
    r = cli(*[subst.get(a, a) for a in args])
    assert_user_error(r, str(out), "file")
    assert out.read_text() == "mine" and leftovers(tmp_path) == ["a_file", "best.pt"]


# ---------------------------------------------------------------------------------------------------------
# Real full and read-only file systems (tmpfs in a private mount namespace)


def _namespaces() -> bool:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _namespaces(), reason="no user/mount namespaces (unshare -rm)")


def on_mount(mount: Path, options: str, args: list[str], cwd: Path) -> tuple[CliResult, list[str]]:
    """Run `rsseg ARGS` with a tmpfs mounted on `mount` (options: size=..., ro); return the result and what
    is left on the file system afterwards (listed before the namespace and its mount go away)."""
    mount.mkdir(exist_ok=True)
    script = (
        f'mount -t tmpfs -o {options} tmpfs "{mount}" || exit 99\n'
        f'"{sys.executable}" -m rsseg_cli "$@"; rc=$?\n'
        f'echo "@@LEFT@@"; find "{mount}" -mindepth 1\n'
        "exit $rc\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    p = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode != 99, p.stderr
    out, _, left = p.stdout.rpartition("@@LEFT@@")
    return CliResult(p.returncode, out, p.stderr), [line for line in left.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset) -> Path:
    """A tiny trained run on the shared dataset (its best checkpoint), for evaluate."""
    from rsseg_cli.cli import main

    run = tmp_path_factory.mktemp("io_run") / "run"
    sets = [a for kv in TINY_TRAIN for a in ("--set", kv)]
    try:
        main(["train", "--data", str(dataset), "--labeled", "1/2", "--out", str(run), *sets])
    except SystemExit as exc:
        assert not exc.code
    return run / "checkpoints" / "best.pt"


COMMANDS = {
    "tile": ["tile", "SCENE", "--labels", "LABELS", "--out", "MNT/data", "--chip-size", "64"],
    "sample": ["sample", "MNT/sample", "--size", "384"],
    "vectorize": ["vectorize", "MASK", "--out", "MNT/polygons.gpkg"],
    "predict": ["predict", "SCENE", "--checkpoint", "CKPT3", "--out", "MNT/mask.tif", "--device", "cpu"],
    "evaluate": ["evaluate", "--checkpoint", "TRAINED", "--data", "DATA", "--out", "MNT/report"],
    "train": ["train", "--data", "DATA", "--labeled", "1/2", "--out", "MNT/run",
              *[a for kv in TINY_TRAIN for a in ("--set", kv)], "--set", "train.iterations=2"],
}  # fmt: skip
FAULTS = {
    "full": ("size=24k", "No space left on device"),
    "read-only": ("ro,size=1m", "Read-only file system"),
}


@needs_namespaces
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_full_and_read_only_disks(tmp_path, make_scene, dataset, trained, command, fault):
    scene = make_scene(h=256, w=256)
    mask = write_raster(tmp_path / "mask.tif", (np.arange(256 * 256).reshape(256, 256) // 5000 % 3).astype("uint8"),
                        nodata=255)  # fmt: skip
    subst = {
        "SCENE": scene.image, "LABELS": scene.labels, "MASK": mask, "CKPT3": save_checkpoint(tmp_path / "b.pt"),
        "TRAINED": trained, "DATA": dataset,
    }  # fmt: skip
    mount = tmp_path / "mnt"
    args = [str(subst[a]) if a in subst else a.replace("MNT", str(mount)) for a in COMMANDS[command]]
    options, reason = FAULTS[fault]
    options = "size=4k" if (command, fault) == ("predict", "full") else options  # its mask is small
    r, left = on_mount(mount, options, args, cwd=tmp_path)
    assert_user_error(r, reason, str(mount), "--out")
    assert left == [], left


# ---------------------------------------------------------------------------------------------------------
# A memory limit (ulimit -v): RLIMIT_AS set in the subprocess once its libraries are loaded

MEMORY_RUN = """
import resource, sys
import rasterio, torch  # noqa: F401  (loaded before the limit, like an already running program)
import rsseg_cli.cli, rsseg_cli.data.tiling  # noqa: F401
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 160 * 2**20, resource.RLIM_INFINITY))
rsseg_cli.cli.main(sys.argv[1:])
"""


def test_tile_under_a_memory_limit(tmp_path):
    size = 4096
    profile = dict(driver="GTiff", width=size, height=size, crs="EPSG:32633", tiled=True, compress="deflate",
                   transform=rasterio.transform.from_origin(500000.0, 5500000.0, 1.0, 1.0))  # fmt: skip
    ramp = (np.arange(size, dtype="uint16")[None, :] + np.arange(size, dtype="uint16")[:, None]) % 3000 + 1
    with rasterio.open(tmp_path / "big.tif", "w", count=4, dtype="uint16", **profile) as dst:
        for b in range(1, 5):
            dst.write(ramp, b)
    with rasterio.open(
        tmp_path / "big_labels.tif", "w", count=1, dtype="uint8", nodata=255, **profile
    ) as dst:
        dst.write((ramp // 500 % 4).astype("uint8"), 1)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    p = subprocess.run(
        [sys.executable, "-c", MEMORY_RUN, "tile", "big.tif", "--labels", "big_labels.tif", "--out", out / "data"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert_user_error(CliResult(p.returncode, p.stdout, p.stderr), "Ran out of memory", "--chip-size")
    assert leftovers(out) == [] and not any(p.name.startswith(".") for p in tmp_path.iterdir())
