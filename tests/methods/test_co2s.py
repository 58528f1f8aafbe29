"""Co2S: the stability loss and its ramp, text queries from the real CLIP text tower, attention-only tuning and
learning-rate groups, training steps, and prediction by each student and by their ensemble."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.synthetic.batches import synthetic_batch as fixed_batch
from tests.helpers import TINY_TRAIN

CLIP_KW = (
    "{embed_dim: 32, vision_cfg: {image_size: 64, layers: 4, width: 96, patch_size: 8, head_width: 32}, "
    "text_cfg: {context_length: 77, vocab_size: 49408, width: 32, heads: 2, layers: 1}}"
)
TINY_CO2S = [
    "train.method=co2s",
    f"train.co2s.clip_kwargs={CLIP_KW}",
    "train.co2s.dinov3_kwargs={depth: 4, embed_dim: 96, num_heads: 3, patch_size: 8, img_size: 64}",
    "train.co2s.head={channels: 32, text_channels: 16, up_channels: [16, 16], skip_channels: [8, 4], heads: 2}",
]
# The tiny runs learn at ordinary rates (the recipe's 1e-6 backbone rate would show nothing in 4 steps).
TRAIN = [*TINY_TRAIN, *TINY_CO2S, "train.co2s.query_lr_mult=1"]
CLASSES = [
    {"name": "water", "concepts": ["lake", "river", "pond"]},
    {"name": "forest", "concepts": []},
    {"name": "building"},
]


def tiny_co2s(*extra: str, classes=CLASSES, in_chans: int = 4):
    from rsseg_cli.methods import configured_model

    cfg = load_config(overrides=["model.weights=none", *TINY_CO2S, *extra])
    band_map = [0, 1, 2, None][:in_chans]
    torch.manual_seed(0)
    method, model = configured_model(cfg, classes, in_chans, band_map)
    return method, model, model.spec


# --- the stability loss --------------------------------------------------------------------------------


def test_stability_loss_equals_hand_computation_and_trains_the_student_side():
    """Three classes, four pixels, tau 0.8:
    pixel 0: a confident (0.9) > b (0.6): a teaches b;  pixel 1: both below tau: no loss;
    pixel 2: b confident (0.85) > a (0.5): b teaches a;  pixel 3: a confident but ignored: no loss."""
    from rsseg_cli.methods.co2s import stability_loss

    p_a = torch.tensor([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.5, 0.25, 0.25], [0.95, 0.03, 0.02]])
    p_b = torch.tensor([[0.2, 0.6, 0.2], [0.4, 0.4, 0.2], [0.05, 0.1, 0.85], [0.1, 0.1, 0.8]])
    # (1, 3, 1, 4) logits whose softmax is exactly these probabilities.
    logits_a = p_a.log().T[None, :, None, :].clone().requires_grad_(True)
    logits_b = p_b.log().T[None, :, None, :].clone().requires_grad_(True)
    ignore = torch.tensor([[[False, False, False, True]]])

    loss = stability_loss(logits_a, logits_b, ignore, tau=0.8)
    # b <- a at pixel 0 and a <- b at pixel 2, each direction over its own pixel x three classes.
    expected = ((p_b[0] - p_a[0]) ** 2).sum() / (1 * 3) + ((p_a[2] - p_b[2]) ** 2).sum() / (1 * 3)
    torch.testing.assert_close(loss, expected)

    loss.backward()
    grad_a, grad_b = logits_a.grad[0, :, 0], logits_b.grad[0, :, 0]
    # a is the student only at pixel 2, b only at pixel 0; the teacher side gets nothing.
    assert grad_a[:, 2].abs().sum() > 0 and grad_a[:, [0, 1, 3]].abs().sum() == 0
    assert grad_b[:, 0].abs().sum() > 0 and grad_b[:, [1, 2, 3]].abs().sum() == 0
    # The student moves towards the teacher: one gradient step on b lowers the loss at pixel 0.
    with torch.no_grad():
        stepped = logits_b - 10.0 * logits_b.grad
    assert stability_loss(logits_a.detach(), stepped, ignore, 0.8) < loss.detach()


def test_stability_terms_are_normalized_by_their_own_masks_when_one_student_teaches_on_few_pixels():
    """Two classes, eight pixels, tau 0.9. a is confident (0.95) on pixels 0-5 where b is not (0.6): a teaches
    b on six pixels. b is confident (0.99) only on pixel 6 where a says 0.7: b teaches a on one pixel.
    Pixel 7: neither reaches tau. Worked out by hand:
      b <- a, each of the six pixels: 2 x (0.95 - 0.6)^2 = 2 x 0.1225 = 0.245; sum 1.47; / (6 x 2) = 0.1225
      a <- b, pixel 6: 2 x (0.99 - 0.7)^2 = 2 x 0.0841 = 0.1682; / (1 x 2) = 0.0841
    so L_sta = 0.1225 + 0.0841 = 0.2066, where one joint count would give (1.47 + 0.1682) / (7 x 2) = 0.117,
    shrinking a's pull to 1/7 of b's per pixel."""
    from rsseg_cli.methods.co2s import stability_loss, stability_terms

    first = [0.95] * 6 + [0.7, 0.55]  # probability of class 0 per pixel; class 1 gets the rest
    p_a = torch.tensor([[q, 1 - q] for q in first])
    p_b = torch.tensor([[0.6, 0.4]] * 6 + [[0.99, 0.01], [0.5, 0.5]])
    logits_a = p_a.log().T[None, :, None, :].clone().requires_grad_(True)  # (1, 2, 1, 8)
    logits_b = p_b.log().T[None, :, None, :].clone().requires_grad_(True)
    ignore = torch.zeros(1, 1, 8, dtype=torch.bool)

    a_from_b, b_from_a = stability_terms(logits_a, logits_b, ignore, tau=0.9)
    torch.testing.assert_close(b_from_a, torch.tensor(0.1225))
    torch.testing.assert_close(a_from_b, torch.tensor(0.0841))
    loss = stability_loss(logits_a, logits_b, ignore, tau=0.9)
    torch.testing.assert_close(loss, torch.tensor(0.2066))
    assert abs(loss.item() - 0.117) > 0.05

    # a's gradient comes from its own term only, at full per-pixel strength. At pixel 6, with a's softmax
    # s = (0.7, 0.3), teacher t = (0.99, 0.01) and L = sum((s - t)^2) / (1 x 2): dL/ds = s - t = (-0.29, 0.29);
    # ds0/dz0 = s0 s1 = 0.21 and ds1/dz0 = -0.21, so dL/dz0 = -0.29 x 0.21 - 0.29 x 0.21 = -0.1218 = -dL/dz1.
    a_from_b.backward()
    torch.testing.assert_close(logits_a.grad[0, :, 0, 6], torch.tensor([-0.1218, 0.1218]))
    assert logits_a.grad[0, :, 0, :6].abs().sum() == 0 and logits_b.grad is None


def test_stability_loss_without_confident_pixels_is_zero_with_a_gradient_path():
    from rsseg_cli.methods.co2s import stability_loss

    logits = torch.zeros(2, 4, 3, 3, requires_grad=True)  # uniform: confidence 0.25 < tau
    loss = stability_loss(logits, logits.detach().clone(), torch.zeros(2, 3, 3, dtype=torch.bool), 0.95)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph: DDP and the loop see a normal loss


def test_stability_ramp_values():
    from rsseg_cli.methods.co2s import stability_weight

    total = 1000
    assert stability_weight(0, total) == 0.0
    assert stability_weight(100, total) == pytest.approx(0.25)  # half way through the 20 % ramp
    assert stability_weight(50, total) == pytest.approx(0.5 * 0.5 * (1 - math.cos(math.pi / 4)))
    assert stability_weight(200, total) == pytest.approx(0.5)
    assert stability_weight(999, total) == pytest.approx(0.5)
    values = [stability_weight(s, total) for s in range(0, 300)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert stability_weight(10, total, final=1.0, ramp=0.0) == 1.0


# --- model, queries and optimizer groups ---------------------------------------------------------------


def test_text_queries_come_from_the_clip_text_tower_and_are_stored(tmp_path):
    """The CLIP student's queries are the text tower's embeddings of "a photo of a {name}" by default (the
    release's "single"), of each class's name + concepts with concept-avg (from a local weights file, as
    offline clusters load them), unit norm, one per class, in the state."""
    from safetensors.torch import save_file

    from rsseg_cli.models import create_open_clip, tiny_overrides
    from rsseg_cli.models.text_queries import encode_class_queries

    torch.manual_seed(11)
    clip = create_open_clip("clip_b16", **tiny_overrides("clip_b16"))
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(tmp_path / "clip.safetensors"))
    _, model, _ = tiny_co2s(f"train.co2s.clip_weights={tmp_path / 'clip.safetensors'}")
    queries = model.students["clip"].queries
    assert queries.shape == (3, 32) and "students.clip.queries" in model.state_dict()
    assert "queries" not in dict(model.students["clip"].named_parameters())
    torch.testing.assert_close(queries.norm(dim=1), torch.ones(3))
    concepts = [["water", "lake", "river", "pond"], ["forest"], ["building"]]
    torch.testing.assert_close(queries, encode_class_queries(clip, "clip_b16", concepts))  # single
    assert model.spec.parts["text_queries"] == "single"
    # The student's image tower got the same file's weights.
    visual = model.students["clip"].backbone.model.state_dict()
    for k, v in clip.visual.state_dict().items():
        if k == "conv1.weight":  # 4 bands: the band adapter's filters, from the pretrained RGB ones
            torch.testing.assert_close(visual[k][:, :3], v * 3 / 4)
        else:
            torch.testing.assert_close(visual[k], v)
    # With concept-avg the concepts change the query; a concept list in the config overrides the class table's.
    _, other, _ = tiny_co2s(
        f"train.co2s.clip_weights={tmp_path / 'clip.safetensors'}",
        "train.co2s.text_queries=concept-avg",
        "train.co2s.concepts={forest: [woodland, trees]}",
    )
    averaged = other.students["clip"].queries
    assert other.spec.parts["text_queries"] == "concept-avg"
    for i, words in enumerate([concepts[0], ["forest", "woodland", "trees"]]):
        want = encode_class_queries(clip, "clip_b16", [words], variant="concept-avg")[0]
        torch.testing.assert_close(averaged[i], want)
    assert not torch.allclose(averaged[0], queries[0]) and torch.allclose(averaged[2], queries[2])


def test_only_attention_learns_and_groups_get_their_rates():
    from rsseg_cli.methods.co2s import Co2S

    method, model, _ = tiny_co2s("train.co2s.query_lr_mult=100")
    for name, student in model.students.items():
        trainable = {n for n, p in student.backbone.named_parameters() if p.requires_grad}
        assert trainable and all(".attn." in n for n in trainable), name
        assert all(("qkv" in n or "proj" in n or n.endswith(("q_bias", "v_bias"))) for n in trainable), name
    assert model.students["dinov3"].queries.requires_grad
    groups = model.param_groups()
    names = {g["name"] for g in groups}
    assert {"clip.backbone", "clip.head", "dinov3.backbone", "dinov3.head", "dinov3.queries"} <= names
    # Weight decay on every trainable parameter, norms included, as the release's optimizer does.
    assert not any("weight_decay" in g for g in groups) and not any("no_decay" in n for n in names)
    assert isinstance(method, Co2S)
    # The paper: base 1e-4, backbone x0.01, head x10, queries x1 -> in rsseg terms lr 1e-6, x1000, x100.
    rates = {n: method.lr_multiplier(n, 1000.0) for n in names}
    assert rates["clip.backbone"] == rates["dinov3.backbone"] == 1.0
    assert rates["clip.head"] == rates["dinov3.head"] == 1000.0
    assert rates["dinov3.queries"] == 100.0
    cfg = load_config(overrides=["train.method=co2s"])
    assert (cfg.train.lr, cfg.train.head_lr_mult, cfg.train.crop, cfg.train.epochs) == (1e-6, 1000.0, 512, 80)
    assert (cfg.train.co2s.clip, cfg.train.co2s.dinov3) == ("clip_b16", "dinov3_b_qkvb")


def test_one_adamw_with_student_groups_equals_two_optimizers():
    """The paper's two optimizers (one per student) give exactly what one AdamW over both students' groups
    gives: the students share no parameter and AdamW updates each parameter on its own."""
    method, model, _ = tiny_co2s()
    twin = copy.deepcopy(model)
    labeled, unlabeled = fixed_batch(classes=3)
    one = torch.optim.AdamW(model.param_groups(), lr=1e-3)
    two = [torch.optim.AdamW([{**g} for g in s.param_groups()], lr=1e-3) for s in twin.students.values()]
    for step in range(2):
        method.begin_step(step + 50, 100)
        for m, opts in ((model, [one]), (twin, two)):
            torch.manual_seed(step)  # the same dropout masks on both sides
            out = method.step(m, None, labeled, unlabeled)
            for o in opts:
                o.zero_grad()
            out.loss.backward()
            for o in opts:
                o.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_ensemble_averages_both_students_probabilities():
    _, model, _ = tiny_co2s()
    model.eval()
    x = torch.randn(2, 4, 40, 40)
    with torch.no_grad():
        p_clip = model.students["clip"](x).softmax(1)
        p_dino = model.students["dinov3"](x).softmax(1)
        torch.testing.assert_close(model.use("ensemble")(x).softmax(1), (p_clip + p_dino) / 2)
        torch.testing.assert_close(model.use("clip")(x).softmax(1), p_clip)
        torch.testing.assert_close(model.use("dinov3")(x).softmax(1), p_dino)
        probs = model.variant_probs(x)
    assert set(probs) == {"clip", "dinov3", "ensemble"}
    assert not torch.allclose(p_clip, p_dino)


# --- training -----------------------------------------------------------------------------------------


def test_a_few_cpu_steps_with_tiny_vits_lower_both_students_losses():
    method, model, _ = tiny_co2s("train.tau=0.0")  # tau 0: every pseudo-label and pixel counts
    # A random text tower gives near-identical queries for any prompts (cosine ~0.98); real CLIP's differ.
    # Distinct unit queries stand in for them, so the CLIP student has classes to tell apart.
    model.students["clip"].queries.copy_(torch.eye(3, 32))
    opt = torch.optim.AdamW(
        [{**g, "lr": 1e-3 * method.lr_multiplier(g["name"], 1.0)} for g in model.param_groups()]
    )
    labeled, unlabeled = fixed_batch(classes=3)
    # A learnable map (left, middle and right thirds), not per-pixel noise.
    labeled["mask"] = (
        torch.div(torch.arange(32), 11, rounding_mode="floor").expand_as(labeled["mask"]).clone()
    )
    logs = []
    for step in range(12):
        method.begin_step(step, 12)
        torch.manual_seed(100)
        out = method.step(model, None, labeled, unlabeled)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        logs.append({k: float(v) for k, v in out.logs.items()} | {"loss": out.loss.item()})
    assert logs[0]["w_sta"] == 0.0 and logs[-1]["w_sta"] == pytest.approx(0.5)
    assert logs[-1]["clip_x"] < logs[0]["clip_x"] and logs[-1]["dinov3_x"] < logs[0]["dinov3_x"]
    assert logs[-1]["loss_sta"] > 0  # the students disagree somewhere: the loss is live
    assert all(math.isfinite(x["loss"]) for x in logs)


def test_train_co2s_end_to_end_predicts_with_each_student(dataset, tmp_path, cli, monkeypatch, no_plots):
    import rasterio

    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", dataset, "--labeled", "1/4", "--method", "co2s", "--out", "run"]
    for s in TRAIN:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 0, r.err
    records = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert all(set(x["students"]) == {"clip", "dinov3", "ensemble"} for x in records)
    assert all(x["mIoU"] == max(x["students"].values()) for x in records)
    best = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=False)
    assert best["method"] == "co2s" and best["variant"] in ("clip", "dinov3", "ensemble")
    best_record = max(records, key=lambda x: x["mIoU"])
    assert best["variant"] == best_record["student"]
    assert best["state_dict"]["students.clip.queries"].shape == (7, 32)
    assert best["model"]["parts"]["concepts"][0][0] == "water"

    scene = dataset.parent / "sample" / "scene.tif"
    masks = {}
    for student in ("clip", "dinov3", "ensemble"):
        out = tmp_path / f"{student}.tif"
        r = cli(
            "predict", scene, "--out", out, "--checkpoint", "run/checkpoints/best.pt", "--student", student
        )
        assert r.code == 0, r.err
        with rasterio.open(out) as src:
            masks[student] = src.read(1)
    assert not (masks["clip"] == masks["dinov3"]).all()
    r = cli("predict", scene, "--out", "default.tif", "--checkpoint", "run/checkpoints/best.pt")
    assert r.code == 0, r.err
    with rasterio.open(tmp_path / "default.tif") as src:
        assert (src.read(1) == masks[best["variant"]]).all()

    r = cli("evaluate", "--checkpoint", "run/checkpoints/best.pt", "--json")
    assert r.code == 0, r.err
    metrics = json.loads(r.out)
    assert set(metrics["students"]) == {"clip", "dinov3", "ensemble"}
    assert metrics["student"] == best["variant"]
    assert metrics["mean_iou"] == pytest.approx(metrics["students"][best["variant"]]["mean_iou"])
    r = cli("evaluate", "--checkpoint", "run/checkpoints/best.pt", "--student", "dinov3", "--json")
    assert json.loads(r.out)["student"] == "dinov3"
    r = cli(
        "predict", scene, "--out", "x.tif", "--checkpoint", "run/checkpoints/best.pt", "--student", "both"
    )
    assert r.code == 2 and "clip, dinov3, ensemble" in r.err


def test_co2s_resumes_exactly(dataset, tmp_path, no_plots):
    from rsseg_cli.engine.run import run_training

    cfg = load_config(overrides=[*TRAIN, "train.labeled=1/4", "train.iterations=4", "train.eval_every=2"])
    straight = run_training(dataset, cfg, out=tmp_path / "straight")
    run_training(dataset, cfg, out=tmp_path / "resumed", stop_after=2)
    run_training(dataset, cfg, out=tmp_path / "resumed", resume=True)
    a = torch.load(straight / "checkpoints/last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)
    for key, value in a["train_state"]["model"].items():
        torch.testing.assert_close(value, b["train_state"]["model"][key], rtol=0, atol=0)
    assert a["variant"] == b["variant"]


def test_co2s_bad_input(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = [a for s in TRAIN for a in ("--set", s)]
    base = ["train", "--data", dataset, "--labeled", "1/4", "--method", "co2s"]
    r = cli(*base, *sets, "--set", "train.co2s.concepts={lava: [magma]}")
    assert r.code == 2 and "lava" in r.err
    r = cli(*base, *sets, "--set", "model.weights=/w/student.safetensors")
    assert r.code == 2 and "train.co2s.clip_weights" in r.err
    r = cli(*base, *sets, "--set", "train.co2s.dinov3=clip_b16")
    assert r.code == 2 and "timm" in r.err
    assert not (tmp_path / "runs").exists()


def test_dinov3_student_keeps_the_loaded_weights(tmp_path):
    """Pretrained weights are loaded after any initialization: the DINOv3 student's backbone holds exactly the
    file's weights (its patch filters adapted to 4 bands from the file's RGB ones), its queries are new."""
    from safetensors.torch import save_file

    from rsseg_cli.models import build_backbone

    torch.manual_seed(5)
    source = build_backbone("dinov3_b_qkvb", depth=4, embed_dim=96, num_heads=3, patch_size=8, img_size=64)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, str(tmp_path / "dinov3.safetensors"))
    _, model, _ = tiny_co2s(f"train.co2s.dinov3_weights={tmp_path / 'dinov3.safetensors'}")
    loaded = model.students["dinov3"].backbone.model.state_dict()
    for k, v in state.items():
        if k == "patch_embed.proj.weight":
            torch.testing.assert_close(loaded[k][:, :3], v * 3 / 4)
        else:
            torch.testing.assert_close(loaded[k], v, msg=k)
    assert model.students["dinov3"].queries.std().item() == pytest.approx(0.02, rel=0.5)
