"""The checkpoint contract: 0.1.0 files still load (and predict exactly as 0.1.0 did), files that need
arbitrary unpickling are refused without running anything, and the compatibility checks name what differs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from rsseg_cli.engine.checkpoint import FORMAT, Checkpoint
from rsseg_cli.errors import UserError

V010 = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0"


@pytest.mark.parametrize(
    ("name", "architecture"),
    [("unimatch-v2", "segmenter"), ("rs-mtdf", "fusion-segmenter"), ("co2s", "co2s")],
)
def test_a_0_1_0_checkpoint_loads_and_predicts_as_0_1_0_did(name, architecture):
    ckpt = Checkpoint.read(V010 / f"{name}_best.pt")
    assert ckpt.format == FORMAT and ckpt.rsseg_version == "0.1.0"
    assert ckpt.model["architecture"] == architecture and ckpt.method == name
    reference = torch.load(V010 / "reference_logits.pt", weights_only=True)
    model = ckpt.load_model("cpu")
    with torch.no_grad():
        logits = model(reference["input"])
    torch.testing.assert_close(logits, reference[name], rtol=0, atol=0)
    # The resolved spec of the rebuilt model is what a new checkpoint would record: saving and reading
    # it again gives the same network.
    assert model.spec.architecture == architecture


def test_a_0_1_0_co2s_checkpoint_keeps_its_chosen_prediction_under_the_new_key():
    ckpt = Checkpoint.read(V010 / "co2s_best.pt")
    assert ckpt.variant == "ensemble"
    assert ckpt.load_model("cpu", "dinov3").mode == "dinov3"
    assert ckpt.load_model("cpu").mode == "ensemble"


def test_a_0_1_0_last_checkpoint_upgrades_its_training_state(tmp_path):
    old = torch.load(V010 / "unimatch-v2_last.pt", weights_only=True)["train_state"]
    state = Checkpoint.read(V010 / "unimatch-v2_last.pt").train_state
    assert state is not None and "student" not in state and "teacher" not in state
    assert state["model"].keys() == old["student"].keys() and state["ema"].keys() == old["teacher"].keys()
    assert (
        state["step"] == old["step"]
        and state["optimizer"]["state"].keys() == old["optimizer"]["state"].keys()
    )


def test_round_trip_keeps_every_field(tmp_path):
    ckpt = Checkpoint.read(V010 / "co2s_best.pt")
    ckpt.save(tmp_path / "again.pt")
    again = Checkpoint.read(tmp_path / "again.pt")
    for field in ("model", "method", "classes", "bands", "dtype", "normalization", "crop", "variant", "best"):
        assert getattr(again, field) == getattr(ckpt, field), field
    assert again.state_dict.keys() == ckpt.state_dict.keys()
    raw = torch.load(tmp_path / "again.pt", weights_only=True)
    assert raw["format"] == FORMAT and raw["palette"] == ckpt.palette and "student" not in raw


class _Payload:
    """An object whose unpickling runs a command: what a malicious .pt would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_with_a_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"kind": "rsseg-checkpoint", "model": _Payload(marker)}, path)
    # The payload does run when the file is unpickled without restriction (the test can fail) ...
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    # ... and rsseg refuses the file without running it.
    with pytest.raises(UserError, match="arbitrary unpickling"):
        Checkpoint.read(path)
    assert not marker.exists()


def test_a_plain_pickle_is_refused_too(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"kind": "rsseg-checkpoint", "when": _Payload(tmp_path / "x")}, protocol=2))
    with pytest.raises(UserError):
        Checkpoint.read(path)
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_from_a_newer_format_names_the_versions(tmp_path):
    raw = torch.load(V010 / "unimatch-v2_best.pt", weights_only=True)
    raw["format"] = FORMAT + 1
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(UserError, match="newer rsseg"):
        Checkpoint.read(tmp_path / "new.pt")


def test_compatibility_checks_name_what_differs():
    ckpt = Checkpoint.read(V010 / "unimatch-v2_best.pt")
    bands, classes = ckpt.band_names, ckpt.class_names
    ckpt.check_dataset(bands, classes, ckpt.dtype, "data")
    with pytest.raises(UserError, match="trained on 4 bands"):
        ckpt.check_dataset(bands[:3], classes, ckpt.dtype, "data")
    with pytest.raises(UserError, match="classes"):
        ckpt.check_dataset(bands, classes[::-1], ckpt.dtype, "data")
    with pytest.raises(UserError, match=r"float32 pixels.*uint16"):
        ckpt.check_dataset(bands, classes, "float32", "data")
    with pytest.raises(UserError, match="--student"):
        ckpt.load_model("cpu", "clip")
