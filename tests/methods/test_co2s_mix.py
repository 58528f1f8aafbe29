"""Co2S's CutMix partner: a second, independent unlabeled batch, pseudo-labelled by each student itself."""

from __future__ import annotations

import torch

from rsseg_cli.config import load_config
from rsseg_cli.data.augment import mix
from rsseg_cli.synthetic.batches import synthetic_batch as fixed_batch
from tests.methods.test_co2s import TRAIN, tiny_co2s


def _capture_strong(model: torch.nn.Module) -> list[torch.Tensor]:
    """The strong views the model is called with (observed, the model runs as usual)."""
    seen: list[torch.Tensor] = []

    def hook(_module, _args, kwargs):
        if kwargs.get("strong") is not None:
            seen.append(kwargs["strong"].detach().clone())

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def test_strong_views_paste_from_the_second_batch_and_its_pseudo_labels_are_the_targets():
    method, model, _ = tiny_co2s("train.tau=0.0")  # tau 0: every pseudo-label counts
    labeled, u = fixed_batch(classes=3)
    _, other = fixed_batch(classes=3, seed=7)
    seen = _capture_strong(model)

    def loss(unlabeled: dict) -> float:
        torch.manual_seed(0)  # the same feature-dropout masks
        return method.step(model, None, labeled, unlabeled).loss.item()

    base = loss({**u, "mix": other})
    s1, s2 = seen[-1].chunk(2)
    torch.testing.assert_close(s1, mix(u["strong1"], other["strong1"], u["box1"]))
    torch.testing.assert_close(s2, mix(u["strong2"], other["strong2"], u["box2"]))
    assert not torch.equal(s1, mix(u["strong1"], u["strong1"].roll(1, 0), u["box1"]))  # not the partner

    # The pasted region's targets are the students' own predictions on the second batch's weak view: a
    # different weak view (same strong images) changes the loss.
    changed = {**other, "weak": torch.randn_like(other["weak"])}
    assert abs(loss({**u, "mix": changed}) - base) > 1e-6
    # Outside the boxes nothing of the second batch counts: with empty boxes it makes no difference.
    empty = {**u, "box1": torch.zeros_like(u["box1"]), "box2": torch.zeros_like(u["box2"])}
    assert loss({**empty, "mix": other}) == loss({**empty, "mix": changed})


def test_second_batch_predictions_carry_no_gradient():
    _, model, _ = tiny_co2s()
    labeled, u = fixed_batch(classes=3)
    x = torch.cat([labeled["image"], u["weak"]])
    out = model(x, strong=u["strong1"], n_labeled=2, mix_weak=u["weak"])
    for name in ("clip", "dinov3"):
        assert out[name]["mix"].shape == out[name]["strong"].shape and not out[name]["mix"].requires_grad
        assert out[name]["strong"].requires_grad


def test_training_draws_an_independent_second_unlabeled_batch(dataset, tmp_path, monkeypatch):
    from rsseg_cli.engine.run import run_training
    from rsseg_cli.methods.co2s import Co2S

    seen: list[dict] = []
    step = Co2S.step

    def spy(self, student, teacher, labeled, unlabeled):
        seen.append({k: v for k, v in unlabeled.items() if k != "mix"} | {"mix": dict(unlabeled["mix"])})
        return step(self, student, teacher, labeled, unlabeled)

    monkeypatch.setattr(Co2S, "step", spy)
    cfg = load_config(overrides=[*TRAIN, "train.labeled=1/4", "train.iterations=2", "train.eval_every=2"])
    run_training(dataset, cfg, out=tmp_path / "run")
    assert len(seen) == 2
    for u in seen:
        other = u["mix"]
        assert set(other) >= {"weak", "strong1", "strong2", "ignore"}
        assert other["weak"].shape == u["weak"].shape and not torch.equal(other["weak"], u["weak"])


def test_a_cutmix_partner_that_is_the_image_itself_is_reported():
    from rsseg_cli.methods import method_class

    co2s = method_class("co2s")(3)
    assert co2s.cutmix_partner_problem(batch=1, pool=50) is None  # the second batch supplies partners
    assert "only one unlabeled chip" in co2s.cutmix_partner_problem(batch=1, pool=1)
    fixmatch = method_class("fixmatch")(3)
    assert "batch_size_unlabeled is 1" in fixmatch.cutmix_partner_problem(batch=1, pool=50)
    assert fixmatch.cutmix_partner_problem(batch=2, pool=50) is None
    assert method_class("supervised")(3).cutmix_partner_problem(batch=1, pool=0) is None
