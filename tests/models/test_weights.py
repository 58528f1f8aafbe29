"""Backbone weights: local files and folders through timm / open_clip, and the errors when they fail."""

from __future__ import annotations

import time

import pytest
import torch

from rsseg_cli.errors import UserError
from rsseg_cli.models.backbones import build_backbone
from rsseg_cli.models.open_clip_adapter import create_open_clip
from rsseg_cli.models.presets import get_preset, tiny_overrides
from rsseg_cli.models.weights import LOCAL_DIR, resolve_weights
from tests.commands.helpers import assert_user_error
from tests.helpers import TINY_TRAIN
from tests.models.helpers import save_weights


@pytest.mark.parametrize("name", ["dinov2_s", "dinov3_s"])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_loads_local_file(tmp_path, name, suffix):
    ov = tiny_overrides(name)
    torch.manual_seed(1)
    saved = build_backbone(name, **ov).model.state_dict()
    path = save_weights(saved, tmp_path / f"weights{suffix}")
    torch.manual_seed(2)
    loaded = build_backbone(name, weights=path, **ov).model.state_dict()
    assert loaded.keys() == saved.keys()
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k


def test_timm_loads_local_dir(tmp_path):
    ov = tiny_overrides("dinov2_s")
    saved = build_backbone("dinov2_s", **ov).model.state_dict()
    save_weights(saved, tmp_path / "model.safetensors")
    for weights in (f"local-dir:{tmp_path}", str(tmp_path)):
        loaded = build_backbone("dinov2_s", weights=weights, **ov).model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in saved.items())


@pytest.mark.parametrize("layout", ["file", "dir"])
def test_open_clip_loads_local_weights(tmp_path, layout):
    ov = tiny_overrides("clip_b16")
    torch.manual_seed(1)
    saved = create_open_clip("clip_b16", **ov).state_dict()
    name = "weights.safetensors" if layout == "file" else "open_clip_model.safetensors"
    path = save_weights(saved, tmp_path / name)
    torch.manual_seed(2)
    bb = build_backbone("clip_b16", weights=path if layout == "file" else f"local-dir:{tmp_path}", **ov)
    loaded = bb.model.state_dict()
    visual = {k.removeprefix("visual."): v for k, v in saved.items() if k.startswith("visual.")}
    assert loaded.keys() == visual.keys()
    for k, v in visual.items():
        assert torch.equal(loaded[k], v), k


def test_wrong_weights_file_is_a_user_error(tmp_path):
    small = build_backbone("dinov2_s", **tiny_overrides("dinov2_s", embed_dim=48)).model.state_dict()
    path = save_weights(small, tmp_path / "other.safetensors")
    with pytest.raises(UserError, match=r"other\.safetensors"):
        build_backbone("dinov2_s", weights=path, **tiny_overrides("dinov2_s"))


@pytest.mark.parametrize("weights", ["/nonexistent/weights.safetensors", "local-dir:/nonexistent/dir"])
@pytest.mark.parametrize("name", ["dinov2_s", "clip_b16"])
def test_missing_weights_path_is_a_user_error(name, weights):
    with pytest.raises(UserError, match="do not exist"):
        build_backbone(name, weights=weights, **tiny_overrides(name))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty cache; huggingface_hub reads its settings at import, so patch those too."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.mark.parametrize(
    "name, model", [("dinov2_s", "vit_small_patch14_dinov2.lvd142m"), ("clip_b16", "ViT-B-16-quickgelu")]
)
def test_hub_offline_fails_fast_with_user_error(offline, name, model):
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        build_backbone(name, weights="hub", **tiny_overrides(name))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert model in message
    assert "model.weights=/path/to/weights.safetensors" in message
    assert "local" in message
    assert "--set model.weights=none" in message  # the way to run at all without the weights


def test_train_offline_with_hub_weights_names_both_fixes(offline, dataset, cli, tmp_path, monkeypatch):
    """`rsseg train` asking for pretrained weights with no network: exit 2, naming a local file and 'none'."""
    monkeypatch.chdir(tmp_path)
    tiny = [s for s in TINY_TRAIN if not s.startswith("model.weights")]
    sets = [arg for s in [*tiny, "model.weights=hub"] for arg in ("--set", s)]
    r = cli("train", "--data", dataset, "--labeled", "1/2", *sets)
    assert_user_error(r, "vit_small_patch14_dinov2", "--set model.weights=none", "model.weights=/path/to/")
    assert not (tmp_path / "runs").exists()


def test_resolve_weights_kinds(tmp_path):
    preset = get_preset("dinov2_s")
    file = tmp_path / "w.safetensors"
    file.write_bytes(b"")
    assert resolve_weights(None, preset) == ("none", None)
    assert resolve_weights("none", preset) == ("none", None)
    assert resolve_weights("hub", preset) == ("hub", None)
    assert resolve_weights(file, preset) == ("file", file)
    assert resolve_weights(str(tmp_path), preset) == ("dir", tmp_path)
    assert resolve_weights(f"{LOCAL_DIR}{tmp_path}", preset) == ("dir", tmp_path)
    with pytest.raises(UserError, match="takes a folder"):
        resolve_weights(f"{LOCAL_DIR}{file}", preset)
