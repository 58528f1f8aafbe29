"""Batches that survive: the manifest, failed scenes isolated, reruns that skip finished scenes (and redo
changed or incomplete ones), --overwrite, exit codes, and Ctrl-C in the middle of a batch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsseg_cli.geo.sources import SceneSource
from rsseg_cli.predict.batch import MANIFEST_NAME, Manifest, decide
from tests.conftest import write_raster
from tests.predict.test_predict_cmd import scene_data


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def statuses(records: list[dict]) -> dict[str, str]:
    """Scene file name -> status of its last line."""
    return {Path(r["scene"]).name: r["status"] for r in records}


def mtimes(*paths: Path) -> list[int]:
    return [p.stat().st_mtime_ns for p in paths]


def break_scene(path: Path, how: str) -> None:
    if how == "bands":  # opens fine, but not what the checkpoint was trained on: fails the up-front check
        write_raster(path, scene_data(40, 40, bands=4))
    else:  # a download cut short: its header opens, its pixels do not read
        write_raster(path, scene_data(40, 40, seed=1))
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.truncate(size - 2000)


@pytest.fixture
def three(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        write_raster(tmp_path / "in" / f"{name}.tif", scene_data(40, 40, seed=ord(name)))
    return tmp_path / "in"


@pytest.mark.parametrize("how", ["bands", "truncated"])
def test_a_broken_scene_fails_alone_and_a_rerun_skips_the_others(tmp_path, cli, checkpoint, three, how):
    break_scene(three / "b.tif", how)
    out = tmp_path / "preds"
    args = ["predict", str(three / "*.tif"), "--out", out, "--checkpoint", checkpoint, "--probs", out]
    r = cli(*args)
    assert r.code == 2, r.err  # every failure was bad input
    text = " ".join((r.out + r.err).split())
    assert "1 of 3 scenes failed" in text and "b.tif" in text and "not predicted" in text
    assert "Traceback" not in r.err
    for name in ("a", "c"):
        with rasterio.open(out / f"{name}.tif") as src:
            assert src.read(1).shape == (40, 40)
    assert not (out / "b.tif").exists() and not (out / "b_probs.tif").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries, no lock
    first = manifest(out)
    assert statuses(first) == {"a.tif": "done", "b.tif": "failed", "c.tif": "done"}
    failed = next(rec for rec in first if rec["status"] == "failed")
    assert failed["error"] and failed["checkpoint"] == str(Path(checkpoint).resolve())
    assert failed["outputs"] == [str(out / "b.tif"), str(out / "b_probs.tif")]
    done = next(rec for rec in first if rec["status"] == "done")
    assert (
        done["seconds"] > 0 and done["rsseg"] and done["time"] and sum(done["class_pixels"].values()) == 1600
    )

    # Fixed, and run again: a and c are skipped (their files untouched), b is predicted.
    kept = mtimes(out / "a.tif", out / "c.tif", out / "a_probs.tif")
    write_raster(three / "b.tif", scene_data(40, 40, seed=2))
    r = cli(*args)
    assert r.code == 0, r.err
    assert mtimes(out / "a.tif", out / "c.tif", out / "a_probs.tif") == kept
    second = manifest(out)[len(first) :]
    assert statuses(second) == {"a.tif": "skipped", "b.tif": "done", "c.tif": "skipped"}
    assert "skipped" in r.out + r.err

    # --overwrite redoes every scene.
    r = cli(*args, "--overwrite")
    assert r.code == 0, r.err
    assert all(a != b for a, b in zip(mtimes(out / "a.tif", out / "c.tif", out / "a_probs.tif"), kept))
    assert set(statuses(manifest(out)[len(first) + 3 :]).values()) == {"done"}


def test_a_scene_changed_after_its_output_or_an_incomplete_output_is_redone(tmp_path, cli, checkpoint, three):
    out = tmp_path / "preds"
    args = ["predict", str(three / "*.tif"), "--out", out, "--checkpoint", checkpoint]
    assert cli(*args).code == 0
    later = (out / "a.tif").stat().st_mtime + 10
    os.utime(three / "a.tif", (later, later))  # the scene was replaced after its mask was written
    (out / "b.tif.aux.xml").unlink()  # b's class-name sidecar is gone: its outputs are incomplete
    kept = mtimes(out / "c.tif")
    r = cli(*args)
    assert r.code == 0, r.err
    assert statuses(manifest(out)[3:]) == {"a.tif": "done", "b.tif": "done", "c.tif": "skipped"}
    assert mtimes(out / "c.tif") == kept and (out / "b.tif.aux.xml").exists()
    assert "predicting again" in r.err + r.out


def test_skip_decisions_without_a_manifest_and_with_another_checkpoint(tmp_path, cli, checkpoint, three):
    """Outputs of rsseg with no manifest line still count as complete; junk under a mask's name does not;
    the manifest's checkpoint must be the one predicting now."""
    from rsseg_cli.predict.inputs import plan_jobs

    out = tmp_path / "preds"
    assert (
        cli("predict", three / "a.tif", three / "b.tif", "--out", out, "--checkpoint", checkpoint).code == 0
    )
    scenes = [SceneSource.from_path(three / "a.tif"), SceneSource.from_path(three / "b.tif")]
    jobs = plan_jobs(scenes, out, None, None, overwrite=True)
    same = Manifest(out / MANIFEST_NAME, Path(checkpoint).resolve())
    assert [decide(j, same, overwrite=False).skip for j in jobs] == [True, True]
    other = Manifest(out / MANIFEST_NAME, tmp_path / "other.pt")
    assert "another checkpoint" in decide(jobs[0], other, overwrite=False).reason
    nothing = Manifest(tmp_path / "none.jsonl", tmp_path / "other.pt")  # no manifest: the mask decides
    assert decide(jobs[0], nothing, overwrite=False).skip
    (out / "b.tif").write_bytes(b"an earlier result")
    assert not decide(jobs[1], nothing, overwrite=False).skip
    assert decide(jobs[0], same, overwrite=True).reason == "--overwrite"


def test_a_torn_manifest_line_is_ignored(tmp_path):
    from types import SimpleNamespace

    path = tmp_path / MANIFEST_NAME
    job = SimpleNamespace(scene=tmp_path / "a.tif", mask=tmp_path / "a.tif", outputs=[tmp_path / "a.tif"])
    Manifest(path, "ck.pt").append(job, "done", 1.0)
    with open(path, "a") as f:
        f.write('{"scene": "b.tif", "sta')  # a run killed in the middle of a write
    m = Manifest(path, "ck.pt")
    assert [r["status"] for r in m.records()] == ["done"] and m.last_for(tmp_path / "a.tif")["seconds"] == 1.0


def test_ctrl_c_in_the_second_scene_keeps_the_first_and_leaves_nothing_partial(
    tmp_path, cli, checkpoint, three, monkeypatch
):
    import rsseg_cli.predict.scene as run_module

    real = run_module.StreamPredictor
    calls = []

    class Interrupting(real):
        def run(self, read, height, width, sink, on_window=None, bands=None):
            calls.append(1)
            if len(calls) == 2:  # the second scene: Ctrl-C once its first rows reach the staging files

                def interrupt(*a):
                    sink(*a)
                    raise KeyboardInterrupt

                return super().run(read, height, width, interrupt, on_window, bands)
            return super().run(read, height, width, sink, on_window, bands)

    monkeypatch.setattr(run_module, "StreamPredictor", Interrupting)
    out = tmp_path / "preds"
    r = cli("predict", str(three / "*.tif"), "--out", out, "--checkpoint", checkpoint, "--probs", out)
    assert r.code == 130, r.err
    assert sorted(p.name for p in out.iterdir()) == [
        "a.qml",
        "a.tif",
        "a.tif.aux.xml",
        "a_probs.qml",
        "a_probs.tif",
        MANIFEST_NAME,
    ]  # no partial file, no staging file, no lock
    assert statuses(manifest(out)) == {"a.tif": "done", "b.tif": "interrupted"}
    with rasterio.open(out / "a.tif") as src:
        assert np.isin(src.read(1), [0, 1, 2]).all()
