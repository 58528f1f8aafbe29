"""`rsseg train --init-from`: a new run starts from exactly the earlier weights (student and EMA) with a fresh
schedule; another network is refused; a changed class table keeps every other tensor and warns."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from rsseg_cli.config import load_config
from tests.helpers import TINY_TRAIN

BASE = [*TINY_TRAIN, "train.method=fixmatch", "train.labeled=1/4"]


@pytest.fixture(scope="module")
def earlier(dataset, tmp_path_factory) -> Path:
    """An earlier round: 2 steps, its last.pt (student and EMA) written at the validation of step 2."""
    from rsseg_cli.engine.run import run_training

    out = tmp_path_factory.mktemp("init") / "round1"
    run_training(dataset, load_config(overrides=[*BASE, "train.iterations=2", "train.eval_every=2"]), out=out)
    return out / "checkpoints" / "last.pt"


def _weights_at_start(monkeypatch) -> dict:
    """The real trainer's student and EMA weights as fit() begins: after the warm start, before step 1."""
    from rsseg_cli.engine.trainer import Trainer

    seen: dict = {}
    fit = Trainer.fit

    def recording_fit(self, stop_at=None):
        seen["model"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        seen["ema"] = {k: v.detach().clone() for k, v in self.teacher.model.state_dict().items()}
        seen["step"], seen["best"] = self.step, dict(self.best)
        seen["optimizer_state"] = len(self.optimizer.state)
        seen["base_lr"] = self.base_lrs[0]
        return fit(self, stop_at)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    return seen


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].cpu(), b[key].cpu(), rtol=0, atol=0, msg=key)


def test_warm_start_loads_exactly_the_earlier_weights_and_a_fresh_schedule(
    dataset, earlier, tmp_path, monkeypatch
):
    from rsseg_cli.engine.run import run_training

    seen = _weights_at_start(monkeypatch)
    cfg = load_config(overrides=[*BASE, "train.iterations=1", "train.eval_every=1"])
    run = run_training(dataset, cfg, out=tmp_path / "round2", init_from=earlier)

    state = torch.load(earlier, weights_only=False)["train_state"]
    assert state["step"] == 2 and state["ema"] is not None
    # the student from train_state["model"], the EMA teacher from train_state["ema"] (they differ after 2 steps)
    assert any(not torch.equal(state["model"][k], state["ema"][k]) for k in state["model"])
    _same(seen["model"], state["model"])
    _same(seen["ema"], state["ema"])
    # fresh optimizer, step, best and schedule: the first logged lr is the base lr
    assert seen["step"] == 0 and seen["best"]["step"] is None and seen["optimizer_state"] == 0
    first = json.loads((run / "train_log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["lr"] == pytest.approx(seen["base_lr"])
    info = json.loads((run / "run.json").read_text())
    assert info["init_from"] == str(earlier.resolve()) and info["init_from_step"] == 2
    assert info["init_from_kind"] == "last" and info["total_steps"] == 1
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["train_state"]["step"] == 1


def test_best_pt_goes_into_model_and_ema(dataset, earlier, tmp_path, monkeypatch):
    from rsseg_cli.engine.run import run_training

    seen = _weights_at_start(monkeypatch)
    best = earlier.parent / "best.pt"
    cfg = load_config(overrides=[*BASE, "train.iterations=1", "train.eval_every=1"])
    run_training(dataset, cfg, out=tmp_path / "round2", init_from=best, stop_after=None)
    shipped = torch.load(best, weights_only=False)["state_dict"]
    _same(seen["model"], shipped)
    _same(seen["ema"], shipped)


def test_another_backbone_is_refused(dataset, earlier, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", dataset, "--out", tmp_path / "other", "--init-from", earlier]
    for s in [
        *BASE,
        "model.backbone_kwargs={depth: 2, embed_dim: 96, num_heads: 3, patch_size: 8, img_size: 64}",
    ]:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 2, r.err
    assert "another model" in r.err and "backbone_kwargs" in r.err
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("name", "needle"),
    [("model.onnx", "ONNX export"), ("missing.pt", "does not exist"), ("junk.pt", "not a readable")],
)
def test_files_that_cannot_start_a_run(dataset, tmp_path, cli, monkeypatch, name, needle):
    monkeypatch.chdir(tmp_path)
    if name != "missing.pt":
        (tmp_path / name).write_bytes(b"not a checkpoint")
    args = ["train", "--data", dataset, "--out", tmp_path / "run", "--init-from", tmp_path / name]
    for s in BASE:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 2 and needle in r.err, r.err


def test_changed_class_table_loads_the_rest_and_warns(dataset, earlier, tmp_path, monkeypatch, caplog):
    """The earlier round lacked the class 'new' (the analyst added it): its rows stay at init, the other
    classes' rows are copied by name, every class-independent tensor is loaded."""
    from rsseg_cli.data.chipset import ChipDataset
    from rsseg_cli.engine.run import run_training

    names = ChipDataset.open(dataset).class_names
    dropped = 3  # the earlier table lacks this class: later rows shift up by one
    payload = torch.load(earlier, weights_only=False)
    payload["classes"] = [c for i, c in enumerate(payload["classes"]) if i != dropped]
    payload["palette"] = [c.get("color") for c in payload["classes"]]
    keep = [i for i in range(len(names)) if i != dropped]
    class_keys = set()
    for part in ("model", "ema"):
        for key, t in payload["train_state"][part].items():
            if t.dim() >= 1 and t.shape[0] == len(names):
                payload["train_state"][part][key] = t[keep].clone()
                class_keys.add(key)
    assert class_keys  # the head's last layer
    payload["state_dict"] = payload["train_state"]["ema"]
    payload["model"] = {**payload["model"], "num_classes": len(names) - 1}
    old = tmp_path / "six_classes.pt"
    torch.save(payload, old)

    seen = _weights_at_start(monkeypatch)
    cfg = load_config(overrides=[*BASE, "train.iterations=1", "train.eval_every=1"])
    with caplog.at_level(logging.WARNING, logger="rsseg"):
        run_training(dataset, cfg, out=tmp_path / "round2", init_from=old)

    warning = next(r.getMessage() for r in caplog.records if "class table differs" in r.getMessage())
    assert f"new: {names[dropped]}" in warning
    assert all(key in warning for key in class_keys)
    state = payload["train_state"]
    for part in ("model", "ema"):
        for key, t in seen[part].items():
            if key not in class_keys:
                torch.testing.assert_close(t, state[part][key], rtol=0, atol=0, msg=key)
                continue
            for new_row, old_row in ((j, keep.index(j)) for j in keep):
                torch.testing.assert_close(t[new_row], state[part][key][old_row], rtol=0, atol=0)
            assert not torch.equal(t[dropped], torch.zeros_like(t[dropped])) or "bias" in key


def test_resuming_a_run_whose_dataset_changed_classes_is_a_clear_error(
    cli, make_scene, tmp_path, monkeypatch
):
    """A run folder reused with a dataset of another class table: exit 2 with the way out, not a traceback."""
    from tests.helpers import TINY_TRAIN

    monkeypatch.chdir(tmp_path)
    sets = [x for s in [*TINY_TRAIN, "train.crop=32", "train.iterations=2"] for x in ("--set", s)]
    for k, data in ((4, "d4"), (3, "d3")):  # the same scene (same chip ids), labels of 4 then 3 classes
        scene = make_scene(h=128, w=128, name="s", k=k)
        r = cli("tile", scene.image, "--labels", scene.labels, "--out", data, "--chip-size", "32",
                "--set", "tile.split.method=scene", "--keep-incomplete")  # fmt: skip
        assert r.code == 0, r.out + r.err
    assert cli("train", "--data", "d4", "--out", "run", "--method", "supervised", "--no-val", *sets).code == 0
    r = cli("train", "--data", "d3", "--out", "run", "--method", "supervised", "--no-val", *sets)
    assert r.code == 2, r.out + r.err
    assert "--init-from" in r.out + r.err and "Traceback" not in r.out + r.err
