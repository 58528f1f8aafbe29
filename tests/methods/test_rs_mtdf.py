"""RS-MTDF: frozen teachers stay frozen and outside the student, distillation and fusion follow the paper,
teachers are configuration, and an rs-mtdf checkpoint predicts without any teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from rsseg_cli.config import load_config
from rsseg_cli.synthetic.batches import synthetic_batch as fixed_batch
from tests.helpers import TINY_MODEL, TINY_TRAIN

REPO = Path(__file__).resolve().parents[2]

# Tiny DINOv2-shaped teacher on the student's input, tiny open_clip CLIP teacher at its own resolution (32 px,
# the stand-in for 224) before its final LayerNorm: the paper's two teachers, shrunk.
DINO_KW = "{depth: 2, embed_dim: 64, num_heads: 2, patch_size: 8, img_size: 64}"
CLIP_KW = (
    "{embed_dim: 32, vision_cfg: {image_size: 32, layers: 2, width: 80, patch_size: 8, head_width: 40}, "
    "text_cfg: {context_length: 77, vocab_size: 49408, width: 32, heads: 2, layers: 1}}"
)
TINY_TEACHERS = [
    "train.method=rs-mtdf",
    f"train.rs_mtdf.teachers.dino.backbone_kwargs={DINO_KW}",
    f"train.rs_mtdf.teachers.clip.backbone_kwargs={CLIP_KW}",
    "train.rs_mtdf.teachers.clip.resolution=32",
    "train.rs_mtdf.translator_hidden=32",
]


def tiny_rs_mtdf(*extra: str, in_chans: int = 4, num_classes: int = 7):
    """(method, student) as `rsseg train` builds them, tiny."""
    from rsseg_cli.methods import configured_model

    cfg = load_config(overrides=[*TINY_MODEL, *TINY_TEACHERS, *extra])
    band_map = [0, 1, 2, None][:in_chans]
    torch.manual_seed(0)
    classes = [{"name": f"class{i}"} for i in range(num_classes)]
    return configured_model(cfg, classes, in_chans, band_map)


def train_steps(method, student, steps: int, lr: float = 1e-3) -> list[dict[str, float]]:
    """The engine's update, as Trainer does it: optimizer over the model's groups, then the EMA update."""
    from rsseg_cli.engine.schedule import EMATeacher

    ema = EMATeacher(student, 0.9)
    opt = torch.optim.AdamW([g for g in student.param_groups()], lr=lr)
    labeled, unlabeled = fixed_batch()
    logs = []
    for step in range(steps):
        out = method.step(student, ema.model, labeled, unlabeled)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        ema.update(student, step)
        logs.append({"loss": out.loss.item(), **{k: v.item() for k, v in out.logs.items()}})
    return logs


def test_teachers_get_no_gradient_and_never_change():
    method, student = tiny_rs_mtdf()
    before = {t.name: {k: v.clone() for k, v in t.state_dict().items()} for t in method.teachers}
    logs = train_steps(method, student, 3)
    assert all(torch.isfinite(torch.tensor(list(log.values()))).all() for log in logs)
    for t in method.teachers:
        assert not t.training
        for p in t.parameters():
            assert not p.requires_grad and p.grad is None
        for k, v in t.state_dict().items():
            assert torch.equal(v, before[t.name][k]), f"teacher {t.name} changed {k}"
    # The student did learn: the check above is not vacuous.
    torch.manual_seed(0)
    _, fresh = tiny_rs_mtdf()
    assert any(not torch.equal(a, b) for a, b in zip(student.parameters(), fresh.parameters()))


def test_teacher_outputs_carry_no_graph():
    method, _ = tiny_rs_mtdf()
    x = torch.randn(2, 4, 32, 32, requires_grad=True)
    for t in method.teachers:
        out = t(x)
        assert not out.requires_grad and out.dtype == torch.float32
    dino, clip = method.teachers
    assert dino(x).shape == (2, 64, 4, 4)  # the student's input, patch 8
    assert clip(x).shape == (2, 80, 4, 4)  # resized to its 32 px


def test_fixed_resolution_teacher_sees_the_align_corners_resize():
    """The CLIP teacher's input is the image resized bilinearly with align_corners=True (released code)."""
    method, _ = tiny_rs_mtdf()
    clip = next(t for t in method.teachers if t.name == "clip")
    x = torch.randn(2, 4, 48, 48, generator=torch.Generator().manual_seed(1))
    rgb = x[:, clip.rgb]
    with torch.no_grad():
        expected = clip.backbone(F.interpolate(rgb, size=(32, 32), mode="bilinear", align_corners=True))[-1]
        other = clip.backbone(F.interpolate(rgb, size=(32, 32), mode="bilinear", align_corners=False))[-1]
    assert not torch.allclose(expected, other, atol=1e-3)  # the two conventions differ on this input
    torch.testing.assert_close(clip(x), expected.float())


def test_ema_and_optimizer_hold_no_teacher():
    from rsseg_cli.engine.schedule import EMATeacher
    from rsseg_cli.models.teachers import FrozenTeacher

    method, student = tiny_rs_mtdf()
    ema = EMATeacher(student, 0.996)
    teacher_tensors = {p.data_ptr() for t in method.teachers for p in t.parameters()}
    for model in (student, ema.model):
        assert not any(isinstance(m, FrozenTeacher) for m in model.modules())
        assert not teacher_tensors & {p.data_ptr() for p in model.parameters()}
    own = sum(p.numel() for p in student.parameters())
    assert sum(p.numel() for p in ema.model.parameters()) == own
    groups = student.param_groups()
    assert {g["name"] for g in groups} == {"backbone", "head", "fusion"}
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    assert not in_optimizer & {id(p) for t in method.teachers for p in t.parameters()}
    # Translators and projections are optimized (at the head's rate).
    fusion = next(g for g in groups if g["name"] == "fusion")
    assert {id(p) for p in fusion["params"]} == {
        id(p) for m in (student.translators, student.projections) for p in m.parameters()
    }


def test_distillation_loss_equals_hand_computation():
    from rsseg_cli.methods.rs_mtdf import distillation_loss

    g = torch.Generator().manual_seed(3)
    t_dino, y_dino = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    t_clip, y_clip = torch.randn(2, 5, 2, 2, generator=g), torch.randn(2, 5, 2, 2, generator=g)
    total, per = distillation_loss(
        {"dino": t_dino, "clip": t_clip}, {"dino": y_dino, "clip": y_clip}, {"dino": 1.0, "clip": 0.5}
    )
    mse_dino = ((t_dino - y_dino) ** 2).sum() / 96
    mse_clip = ((t_clip - y_clip) ** 2).sum() / 40
    torch.testing.assert_close(per["dino"], mse_dino)
    torch.testing.assert_close(per["clip"], mse_clip)
    torch.testing.assert_close(total, (1.0 * mse_dino + 0.5 * mse_clip) / 2)
    # The paper's form with weights 1: (MSE_dino + MSE_clip) / 2.
    total1, _ = distillation_loss(
        {"dino": t_dino, "clip": t_clip}, {"dino": y_dino, "clip": y_clip}, {"dino": 1.0, "clip": 1.0}
    )
    torch.testing.assert_close(total1, (mse_dino + mse_clip) / 2)
    # A teacher on another grid (other patch size): the translated map is resized to it first.
    _, per2 = distillation_loss({"a": t_dino}, {"a": y_clip[:, :3]}, {"a": 1.0})
    resized = F.interpolate(t_dino, size=(2, 2), mode="bilinear", align_corners=True)
    torch.testing.assert_close(per2["a"], ((resized - y_clip[:, :3]) ** 2).mean())
    other = F.interpolate(t_dino, size=(2, 2), mode="bilinear", align_corners=False)
    assert ((other - y_clip[:, :3]) ** 2).mean() != pytest.approx(per2["a"].item())  # the check bites


def test_fusion_weights_replace_the_fourth_level_in_every_forward():
    """fused = 0.8 * last + 0.1 * proj_dino(t_dino) + 0.1 * proj_clip(resize(t_clip)), written out with the
    projection matrices; levels 1-3 reach the head unchanged, in train and eval mode alike."""
    _, student = tiny_rs_mtdf()
    x = torch.randn(2, 4, 48, 48)
    seen = []
    student.head.register_forward_pre_hook(lambda m, args: seen.append([f.detach() for f in args[0]]))
    for mode in (True, False):
        student.train(mode)
        seen.clear()
        torch.manual_seed(5)
        with torch.no_grad():
            features = student.encode(x)
            # Both resizes with align_corners=True, as released (methods.md).
            small = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=True)
            second = student.encode(small)[-1]  # the student's pass at the CLIP teacher's resolution

            def mlp(m, f):
                h = torch.einsum("bchw,oc->bohw", f, m[0].weight) + m[0].bias[:, None, None]
                return torch.einsum("bchw,oc->bohw", h.relu(), m[2].weight) + m[2].bias[:, None, None]

            def proj(layer, f):
                return torch.einsum("bchw,oc->bohw", f, layer.weight) + layer.bias[:, None, None]

            t_dino = mlp(student.translators["dino"], features[-1])
            t_clip = mlp(student.translators["clip"], second)
            assert t_clip.shape[-2:] == (4, 4) and features[-1].shape[-2:] == (6, 6)
            t_clip_off = F.interpolate(t_clip, size=(6, 6), mode="bilinear", align_corners=False)
            t_clip = F.interpolate(t_clip, size=(6, 6), mode="bilinear", align_corners=True)
            assert not torch.allclose(t_clip, t_clip_off, atol=1e-3)  # the convention is observable here
            expected = (
                0.8 * features[-1]
                + 0.1 * proj(student.projections["dino"], t_dino)
                + 0.1 * proj(student.projections["clip"], t_clip)
            )
            torch.manual_seed(5)
            student(x)
        (given,) = seen
        for level in range(3):
            torch.testing.assert_close(given[level], features[level])
        torch.testing.assert_close(given[3], expected, rtol=1e-4, atol=1e-5)


def test_configured_fusion_weights_and_fusion_off():
    _, student = tiny_rs_mtdf(
        "train.rs_mtdf.student_weight=0.5",
        "train.rs_mtdf.teachers.dino.fusion_weight=0.3",
        "train.rs_mtdf.teachers.clip.fusion_weight=0",
    )
    assert student.student_weight == 0.5
    assert set(student.projections) == {"dino"}  # weight 0: distilled, not fused, no projection
    feats = [torch.randn(1, 48, 3, 3) for _ in range(4)]
    translated = {"dino": torch.randn(1, 64, 3, 3), "clip": torch.randn(1, 80, 2, 2)}
    fused = student.fuse(feats, translated)
    p = student.projections["dino"]
    expected = 0.5 * feats[3] + 0.3 * (
        torch.einsum("bchw,oc->bohw", translated["dino"], p.weight) + p.bias[:, None, None]
    )
    torch.testing.assert_close(fused[3], expected)

    _, plain = tiny_rs_mtdf("train.rs_mtdf.fusion=false")
    assert len(plain.projections) == 0
    assert plain.fuse(feats, translated)[3] is feats[3]


def test_a_few_cpu_steps_run_and_distillation_loss_falls():
    method, student = tiny_rs_mtdf()
    logs = train_steps(method, student, 25, lr=2e-3)
    first, last = logs[0], logs[-1]
    assert {"loss_x", "loss_u", "loss_d", "loss_d_dino", "loss_d_clip"} <= first.keys()
    assert last["loss_d"] < 0.7 * first["loss_d"], [round(x["loss_d"], 4) for x in logs]
    assert last["loss_d_dino"] < first["loss_d_dino"] and last["loss_d_clip"] < first["loss_d_clip"]
    # loss = (L_x + L_u + L_d) / 3 with the default weights.
    assert first["loss"] == pytest.approx((first["loss_x"] + first["loss_u"] + first["loss_d"]) / 3, rel=1e-5)


def test_disabling_a_teacher_removes_its_translator_branch_pass_and_loss():
    method, student = tiny_rs_mtdf("train.rs_mtdf.teachers.clip=null")
    assert [t.name for t in method.teachers] == ["dino"]
    assert set(student.translators) == set(student.projections) == {"dino"}
    assert [b.name for b in student.branches] == ["dino"]
    assert not any("clip" in k for k in student.state_dict())
    calls = []
    student.backbone.register_forward_hook(lambda *a: calls.append(1))
    labeled, unlabeled = fixed_batch()
    out = method.step(student, student, labeled, unlabeled)
    assert "loss_d_clip" not in out.logs and "loss_d_dino" in out.logs
    # One student pass for pseudo-labels, one for the batch: no second pass at the CLIP resolution.
    assert len(calls) == 2
    _, both = tiny_rs_mtdf()
    calls.clear()
    both.backbone.register_forward_hook(lambda *a: calls.append(1))
    both(torch.randn(1, 4, 48, 48))
    assert len(calls) == 2

    only_clip, s2 = tiny_rs_mtdf("train.rs_mtdf.teachers.dino=null")
    assert [t.name for t in only_clip.teachers] == ["clip"] and set(s2.translators) == {"clip"}


def test_teacher_config_merges_defaults_and_checks():
    from rsseg_cli.errors import UserError
    from rsseg_cli.methods.rs_mtdf import _teacher_weights

    cfg = load_config(overrides=["train.method=rs-mtdf"])
    t = cfg.train.rs_mtdf.active_teachers
    assert (t["dino"].backbone, t["dino"].resolution, t["dino"].norm) == ("dinov2_b", None, True)
    assert (t["clip"].backbone, t["clip"].resolution, t["clip"].norm) == ("clip_l14", 224, False)
    assert (cfg.train.batch_size, cfg.train.batch_size_unlabeled) == (8, 8)  # the paper's 8 + 8
    assert (cfg.train.lr, cfg.train.head_lr_mult, cfg.train.crop) == (5e-6, 40.0, 518)
    assert cfg.train.rs_mtdf.student_weight == 0.8
    assert {n: x.fusion_weight for n, x in t.items()} == {"dino": 0.1, "clip": 0.1}
    cfg = load_config(overrides=["train.method=rs-mtdf", "train.rs_mtdf.teachers.dino.weights=/w.pth"])
    assert cfg.train.rs_mtdf.teachers["dino"].backbone == "dinov2_b"  # partial entry merged
    custom = load_config(
        overrides=[
            "train.method=rs-mtdf",
            "train.rs_mtdf.teachers={dino: null, clip: null, eva: {backbone: 'timm:eva02_base_patch14_224'}}",
        ]
    )
    assert list(custom.train.rs_mtdf.active_teachers) == ["eva"]
    with pytest.raises(UserError, match="at least one teacher"):
        load_config(overrides=["train.method=rs-mtdf", "train.rs_mtdf.teachers={dino: null, clip: null}"])
    assert _teacher_weights("dino", None, "none") == "none"
    assert _teacher_weights("dino", "/t.pth", "/s.pth") == "/t.pth"
    with pytest.raises(UserError, match=r"teachers\.clip\.weights"):
        _teacher_weights("clip", None, "/student.safetensors")


def test_any_timm_model_can_teach():
    method, student = tiny_rs_mtdf(
        "train.rs_mtdf.teachers={dino: null, clip: null, vit: {backbone: 'timm:vit_small_patch16_224', "
        "backbone_kwargs: {depth: 1, embed_dim: 40, num_heads: 2, img_size: 64}}}"
    )
    (teacher,) = method.teachers
    assert (teacher.dim, teacher.patch_size) == (40, 16)
    labeled, unlabeled = fixed_batch()
    out = method.step(student, student, labeled, unlabeled)  # patch 16 teacher vs patch 8 student
    assert torch.isfinite(out.loss)


def test_teacher_loads_a_local_weights_file_and_sees_rgb(tmp_path):
    from safetensors.torch import save_file

    from rsseg_cli.models import build_backbone
    from rsseg_cli.models.teachers import TeacherSpec, build_teacher

    torch.manual_seed(7)
    source = build_backbone("dinov2_b", depth=2, embed_dim=64, num_heads=2, patch_size=8, img_size=64)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, str(tmp_path / "dino.safetensors"))
    spec = TeacherSpec(
        "dino",
        "dinov2_b",
        str(tmp_path / "dino.safetensors"),
        backbone_kwargs=dict(depth=2, embed_dim=64, num_heads=2, patch_size=8, img_size=64),
    )
    # Bands blue, green, red, nir: the teacher gets red, green, blue and keeps its 3-band filters.
    teacher = build_teacher(spec, 4, [2, 1, 0, None])
    for k, v in teacher.backbone.model.state_dict().items():
        torch.testing.assert_close(v, state[k])
    x = torch.randn(1, 4, 32, 32)
    torch.testing.assert_close(teacher(x), source.eval()(x[:, [2, 1, 0]])[-1])


def test_train_rs_mtdf_checkpoint_has_no_teacher_and_predicts_without_it(dataset, tmp_path, cli, monkeypatch):
    """`rsseg train --method rs-mtdf` with a teacher from a local file; the checkpoints hold only the student
    (plus its translators and projections); with the teacher's file gone, the checkpoint still predicts."""
    from safetensors.torch import save_file

    from rsseg_cli.models import build_backbone
    from rsseg_cli.models.spec import build

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(1)
    dino = build_backbone("dinov2_b", depth=2, embed_dim=64, num_heads=2, patch_size=8, img_size=64)
    weights = tmp_path / "dinov2_b.safetensors"
    save_file({k: v.contiguous() for k, v in dino.model.state_dict().items()}, str(weights))
    args = ["train", "--data", dataset, "--labeled", "1/4", "--method", "rs-mtdf", "--out", "run"]
    for s in [*TINY_TRAIN, *TINY_TEACHERS, f"train.rs_mtdf.teachers.dino.weights={weights}"]:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 0, r.err

    best = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=False)
    last = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)
    assert best["method"] == "rs-mtdf"
    rebuilt = build(best["model"]).state_dict()
    for state in (best["state_dict"], last["train_state"]["model"], last["train_state"]["ema"]):
        assert state.keys() == rebuilt.keys()
        assert not any(k.startswith(("teacher", "teachers")) for k in state)
    student_tensors = sum(1 for p in build(best["model"]).parameters() if p.requires_grad)
    assert len(last["train_state"]["optimizer"]["state"]) == student_tensors
    assert {b["name"] for b in best["model"]["parts"]["branches"]} == {"dino", "clip"}
    log = [json.loads(x) for x in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert all("loss_d_dino" in x and "loss_d_clip" in x for x in log)
    saved = yaml.safe_load((tmp_path / "run/config.yaml").read_text())["train"]
    assert saved["rs_mtdf"]["teachers"]["dino"]["weights"] == str(weights)

    weights.unlink()
    r = cli(
        "predict",
        dataset.parent / "sample" / "scene.tif",
        "--out",
        "mask.tif",
        "--checkpoint",
        "run/checkpoints/best.pt",
    )
    assert r.code == 0, r.err
    assert (tmp_path / "mask.tif").exists()
    r = cli("evaluate", "--checkpoint", "run/checkpoints/best.pt", "--json")
    assert r.code == 0, r.err
    assert 0 <= json.loads(r.out)["mean_iou"] <= 1


def test_rs_mtdf_resumes_exactly(dataset, tmp_path):
    from rsseg_cli.engine.run import run_training

    cfg = load_config(
        overrides=[
            *TINY_TRAIN,
            *TINY_TEACHERS,
            "train.labeled=1/4",
            "train.iterations=4",
            "train.eval_every=2",
        ]
    )
    straight = run_training(dataset, cfg, out=tmp_path / "straight")
    run_training(dataset, cfg, out=tmp_path / "resumed", stop_after=2)
    run_training(dataset, cfg, out=tmp_path / "resumed", resume=True)
    a = torch.load(straight / "checkpoints/last.pt", weights_only=False)["train_state"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["train_state"]
    for part in ("model", "ema"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=0)


def test_rs_mtdf_bad_input(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["train", "--data", dataset, "--labeled", "1/4", "--method", "rs-mtdf"]
    sets = [a for s in TINY_TRAIN for a in ("--set", s)]
    r = cli(*base, *sets, "--set", "train.rs_mtdf.teachers={dino: null, clip: null}")
    assert r.code == 2 and "at least one teacher" in r.err
    r = cli(*base, *sets, "--set", "train.rs_mtdf.teachers.dino.weights=/nowhere/dino.safetensors")
    assert r.code == 2 and "dinov2_b" in r.err and "do not exist" in r.err
    assert not (tmp_path / "runs").exists()  # nothing written before the teachers loaded


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_teachers_run_in_bf16_on_gpu():
    method, _ = tiny_rs_mtdf()
    method.setup(torch.device("cuda"), "bf16")
    for t in method.teachers:
        assert all(p.dtype == torch.bfloat16 and p.is_cuda for p in t.parameters())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = method.teachers[0](torch.randn(2, 4, 32, 32, device="cuda"))
    assert out.dtype == torch.float32


def test_recipes_load():
    for name, classes in (("loveda", 7), ("potsdam", 6), ("deepglobe", 6)):
        cfg = load_config(REPO / "configs" / "rs-mtdf" / f"{name}.yaml")
        assert cfg.train.method == "rs-mtdf"
        assert len(cfg.classes) == classes
        assert (cfg.train.crop, cfg.train.batch_size, cfg.train.batch_size_unlabeled) == (518, 8, 8)
        assert set(cfg.train.rs_mtdf.active_teachers) == {"dino", "clip"}
