"""The one build path: every backbone preset and every method's model is constructed by models.spec.build
from a ModelSpec, carries its resolved spec, and rebuilds from it (as a checkpoint does)."""

from __future__ import annotations

import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.errors import UserError
from rsseg_cli.methods import METHODS, configured_model
from rsseg_cli.models.presets import BACKBONES, tiny_overrides
from rsseg_cli.models.spec import ARCHITECTURES, ModelSpec, build, variants_of
from tests.helpers import TINY_MODEL
from tests.methods.test_co2s import TINY_CO2S
from tests.methods.test_rs_mtdf import TINY_TEACHERS

CLASSES = [{"name": n} for n in ("water", "forest", "building")]
# Tiny settings per method (the teachers and students of RS-MTDF and Co2S shrunk as in their tests).
METHOD_SETTINGS = {"rs-mtdf": TINY_TEACHERS, "co2s": TINY_CO2S}


def _rebuilt_equals(model: torch.nn.Module) -> None:
    """Rebuilding from the resolved spec gives the same architecture, and with the state the same output."""
    again = build(model.spec.model_dump(mode="json"))
    assert again.spec == model.spec
    again.load_state_dict(model.state_dict())
    x = torch.randn(1, model.spec.in_chans, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), model.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_preset_builds_through_the_spec(name):
    torch.manual_seed(0)
    spec = ModelSpec(num_classes=3, in_chans=4, backbone=name, backbone_kwargs=tiny_overrides(name), head="s")
    model = build(spec, "none")
    assert model.spec.architecture == "segmenter" and model.spec.taps == [0, 1, 2, 3]
    assert model.spec.band_map == [0, 1, 2, None] and model.spec.head_features is not None
    _rebuilt_equals(model)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_builds_its_model_through_the_spec(method):
    cfg = load_config(overrides=[*TINY_MODEL, f"train.method={method}", *METHOD_SETTINGS.get(method, [])])
    torch.manual_seed(0)
    m, model = configured_model(cfg, CLASSES, 4, [0, 1, 2, None])
    assert m.name == method
    assert model.spec.architecture in ARCHITECTURES
    _rebuilt_equals(model)
    # Generic code learns about several predictions through the protocol only.
    assert variants_of(model) == (("clip", "dinov3", "ensemble") if method == "co2s" else ())


def test_a_spec_is_checked():
    with pytest.raises(UserError, match="Unknown model architecture"):
        build({"architecture": "nope", "num_classes": 2, "in_chans": 3})
    with pytest.raises(UserError, match="Invalid model specification"):
        build({"num_classes": 2, "in_chans": 3, "unknown_key": 1})
    with pytest.raises(UserError, match="one weights setting"):
        build(ModelSpec(num_classes=2, in_chans=3, backbone_kwargs=tiny_overrides("dinov2_s")), {"a": "none"})
