"""Training: each method learns on a fixed batch, runs end to end, resumes exactly, and trains under DDP."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rsseg_cli.config import load_config
from tests.helpers import TINY_HEAD, TINY_MODEL, TINY_TRAIN, torchrun


def tiny_segmenter(num_classes=7, in_chans=4, head=()):
    from rsseg_cli.models.spec import ModelSpec, build

    cfg = load_config(overrides=[*TINY_MODEL, *head])
    return build(ModelSpec.from_config(cfg.model, num_classes, in_chans, [0, 1, 2, None]), "none")


@pytest.mark.parametrize("name", ["supervised", "fixmatch", "unimatch-v2"])
def test_each_method_loss_falls_on_a_fixed_batch(name):
    from rsseg_cli.engine.schedule import EMATeacher
    from rsseg_cli.methods import method_class
    from rsseg_cli.synthetic.batches import synthetic_batch

    torch.manual_seed(0)
    model = tiny_segmenter()
    method = method_class(name)(num_classes=7, tau=0.0)  # tau 0: every pseudo-label counts on random data
    teacher = EMATeacher(model, 0.9) if method.uses_ema else None
    labeled, unlabeled = synthetic_batch(n=2, bands=4, size=32, classes=7)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(40):
        torch.manual_seed(100)  # the same dropout masks every step: a truly fixed batch
        out = method.step(model, teacher.model if teacher else None, labeled, unlabeled)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if teacher:
            teacher.update(model, step)
        losses.append(out.loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_train_and_evaluate_end_to_end(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", dataset, "--labeled", "1/4", "--method", "unimatch-v2"]
    for s in TINY_TRAIN:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 0, r.err
    run = (tmp_path / "runs" / "latest").resolve()
    for name in (
        "config.yaml",
        "run.json",
        "splits/labeled.txt",
        "splits/unlabeled.txt",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "metrics.jsonl",
        "train_log.jsonl",
        "plots/training_curves.png",
        "validation/confusion_matrix.png",
    ):
        assert (run / name).exists(), name
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(0 <= r["mIoU"] <= 1 for r in records)
    labeled = (run / "splits" / "labeled.txt").read_text().split()
    unlabeled = (run / "splits" / "unlabeled.txt").read_text().split()
    assert labeled and unlabeled and not set(labeled) & set(unlabeled)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    for key in (
        "model",
        "state_dict",
        "classes",
        "palette",
        "bands",
        "normalization",
        "chip_size",
        "rsseg_version",
    ):
        assert key in best
    assert "train_state" not in best

    r = cli("evaluate", "--json")
    assert r.code == 0, r.err
    metrics = json.loads(r.out)
    assert metrics["split"] == "val" and 0 <= metrics["mean_iou"] <= 1
    assert (run / "eval" / "val" / "metrics.json").exists()
    assert (run / "eval" / "val" / "confusion_matrix.csv").exists()


def test_resume_gives_the_same_weights(dataset, tmp_path, no_plots):
    from rsseg_cli.data.chipset import ChipDataset
    from rsseg_cli.engine.run import run_training

    cfg = load_config(
        overrides=[
            *TINY_TRAIN,
            *TINY_HEAD,
            "train.method=fixmatch",
            "train.labeled=1/4",
            "train.iterations=6",
            "train.eval_every=3",
        ]
    )
    straight = run_training(dataset, cfg, out=tmp_path / "straight")

    # Stopped after 3 steps (as a time-limited cluster job would be), then resumed.
    run_training(dataset, cfg, out=tmp_path / "resumed", stop_after=3)
    half = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=False)
    assert half["train_state"]["step"] == 3
    run_training(dataset, cfg, out=tmp_path / "resumed", resume=True)

    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)["train_state"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=False)["train_state"]
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    for key in a["ema"]:
        torch.testing.assert_close(a["ema"][key], b["ema"][key], rtol=0, atol=0)
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6]
    assert ChipDataset.open(dataset).num_classes == 7


def _args(dataset: Path, out: Path, *sets: str) -> list[str]:
    args = ["train", "--data", str(dataset), "--out", str(out)]
    for s in [*TINY_TRAIN, *TINY_HEAD, *sets]:
        args += ["--set", s]
    return args


def test_ddp_step_matches_single_process_step(dataset, tmp_path):
    """Supervised: one step on 2 processes with batch 2 each equals one step on 1 process with batch 4."""
    common = [
        "train.method=supervised",
        # The batches of the original check: the supervised recipe's doubled batch draws chips whose padded
        # (ignored) pixels differ between the processes, and each process averages its loss over its own
        # labeled pixels, so the two runs would differ by that weighting, not by a DDP fault.
        "train.supervised.batch_multiplier=1",
        "train.supervised.epoch_samples=1",
        "train.labeled=1/1",
        "train.iterations=1",
        "train.eval_every=1",
        "train.lr=1e-3",
    ]
    one = torchrun(1, _args(dataset, tmp_path / "one", *common, "train.batch_size=4"), tmp_path)
    out1 = one.communicate(timeout=600)
    two = torchrun(2, _args(dataset, tmp_path / "two", *common, "train.batch_size=2"), tmp_path)
    out2 = two.communicate(timeout=600)
    assert one.returncode == 0, out1[1][-3000:]
    assert two.returncode == 0, out2[1][-3000:]
    a = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=False)["train_state"]
    b = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=False)["train_state"]
    # After one AdamW step the first moment is 0.1 x the gradient: the averaged DDP gradient must equal the
    # single-process gradient of the same global batch.
    moments_a = a["optimizer"]["state"]
    moments_b = b["optimizer"]["state"]
    assert moments_a.keys() == moments_b.keys() and len(moments_a) > 10
    for k in moments_a:
        torch.testing.assert_close(moments_a[k]["exp_avg"], moments_b[k]["exp_avg"], rtol=1e-3, atol=1e-7)
    # Weights agree to a small fraction of the step size (Adam's first step is ~lr x sign(gradient), which
    # float noise can flip for near-zero gradients).
    torch.manual_seed(0)  # the run's seed: its initial weights
    init = tiny_segmenter(head=TINY_HEAD).state_dict()
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=2e-4)
    assert any(not torch.equal(a["model"][k], init[k]) for k in init), "the step changed nothing"


def test_ddp_semi_supervised_runs_and_resumes(dataset, tmp_path):
    sets = ["train.method=unimatch-v2", "train.labeled=1/4", "train.iterations=8", "train.eval_every=2"]
    proc = torchrun(2, _args(dataset, tmp_path / "run", *sets), tmp_path)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=120)
    assert last.exists()
    stopped = torch.load(last, weights_only=False)["train_state"]["step"]
    assert stopped < 8
    again = torchrun(2, [*_args(dataset, tmp_path / "run", *sets), "--resume"], tmp_path)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert torch.load(last, weights_only=False)["train_state"]["step"] == 8
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 8
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["world_size"] == 2
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["method"] == "unimatch-v2"


def _train(cli, dataset, *args):
    return cli("train", "--data", dataset, *args)


def test_default_model_offline_names_model_and_local_file(dataset, tmp_path, cli, monkeypatch):
    """`rsseg train --labeled 1/8` uses DINOv2-S with hub weights: offline it stops with the download message."""
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    r = _train(cli, dataset, "--labeled", "1/8")
    assert r.code == 2, r.err
    text = " ".join(r.err.split())
    assert "vit_small_patch14_dinov2" in text and "model.weights=" in text
    assert not (tmp_path / "runs").exists()  # nothing half-made


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "mean-teacher"], "train.method"),
        (["--labeled", "3/2"], "at most 1"),
        (["--labeled", "1/1000"], "leaves no labeled chip"),
        (["--set", "model.band_map=[0, 1, 2]"], "model.band_map has 3 entries"),
        (["--labeled", "1/8", "--device", "cuda"], "no CUDA GPU"),
    ],
    ids=["unknown-method", "ratio-above-1", "no-labeled-chip", "band-count", "no-gpu"],
)
def test_train_bad_input(dataset, tmp_path, cli, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    sets = []
    for s in TINY_MODEL:
        sets += ["--set", s]
    r = _train(cli, dataset, *args, *sets)
    assert r.code == 2, r.err
    assert needle in " ".join(r.err.split()) and "Traceback" not in r.err


def test_dataset_without_val_split(tmp_path, cli, monkeypatch):
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.synthetic import generate_sample

    sample = generate_sample(tmp_path / "s", height=256, width=256)
    cfg = load_config(overrides=["tile.chip_size=64", "tile.split.fractions={train: 1.0}"])
    tile_scenes([sample.scene], [sample.labels], tmp_path / "data", cfg)
    monkeypatch.chdir(tmp_path)
    r = _train(cli, tmp_path / "data", "--labeled", "1/2", "--set", "model.weights=none")
    assert r.code == 2 and "no labeled chips in its val split" in " ".join(r.err.split())


def test_missing_dataset(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("train", "--labeled", "1/8")
    assert r.code == 2 and "not an rsseg dataset" in r.err and "rsseg tile" in r.err


def test_checkpoint_round_trip(tmp_path):
    """A saved checkpoint rebuilds the same network: same tensors, same outputs."""
    from rsseg_cli.engine.checkpoint import FORMAT, Checkpoint

    torch.manual_seed(3)
    model = tiny_segmenter().eval()
    Checkpoint(
        model=model.spec.model_dump(mode="json"),
        state_dict=model.state_dict(),
        method="supervised",
        classes=[{"id": i, "name": f"c{i}"} for i in range(7)],
        bands=[{"index": i + 1, "name": f"b{i}"} for i in range(4)],
        dtype="uint16",
        normalization={},
        chip_size=64,
        crop=48,
    ).save(tmp_path / "best.pt")
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["rsseg_version"] and saved["kind"] == "rsseg-checkpoint" and saved["format"] == FORMAT
    again = Checkpoint.read(tmp_path / "best.pt").load_model("cpu")
    x = torch.randn(1, 4, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    from rsseg_cli.errors import UserError

    with pytest.raises(UserError, match="not a readable rsseg checkpoint"):
        Checkpoint.read(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an rsseg checkpoint"):
        Checkpoint.read(tmp_path / "other.pt")


def test_split_file_reuses_a_runs_labeled_chips(dataset, tmp_path):
    from rsseg_cli.engine.run import run_training

    base = [*TINY_TRAIN, "train.method=supervised", "train.iterations=1", "train.eval_every=1"]
    first = run_training(
        dataset, load_config(overrides=[*base, "train.labeled=1/4", "seed=5"]), out=tmp_path / "a"
    )
    labeled = (first / "splits" / "labeled.txt").read_text()
    second = run_training(
        dataset,
        load_config(overrides=[*base, "seed=9"]),
        out=tmp_path / "b",
        split_file=first / "splits" / "labeled.txt",
    )
    assert (second / "splits" / "labeled.txt").read_text() == labeled
    other = run_training(
        dataset, load_config(overrides=[*base, "train.labeled=1/4", "seed=9"]), out=tmp_path / "c"
    )
    assert (other / "splits" / "labeled.txt").read_text() != labeled


def test_diverging_loss_stops_and_keeps_last_good_checkpoint(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", dataset, "--out", tmp_path / "run", "--method", "supervised"]
    for s in [
        *TINY_TRAIN,
        "train.lr=1e30",
        "train.head_lr_mult=1",
        "train.eval_every=1",
        "train.iterations=5",
    ]:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 1, r.err
    text = " ".join(r.err.split())
    assert "The loss became" in text and "last good checkpoint" in text and "Traceback" not in r.err
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert 1 <= last["train_state"]["step"] < 5


def test_bf16_autocast_step_on_cpu(dataset, tmp_path):
    from rsseg_cli.engine.run import run_training

    cfg = load_config(
        overrides=[
            *TINY_TRAIN,
            "train.method=fixmatch",
            "train.labeled=1/4",
            "train.precision=bf16",
            "train.iterations=2",
            "train.eval_every=2",
        ]
    )
    run = run_training(dataset, cfg, out=tmp_path / "bf16")
    info = json.loads((run / "run.json").read_text())
    assert info["precision"] == "bf16"
    records = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records)


def test_train_from_a_local_weights_file(dataset, tmp_path):
    """model.weights = a local file: the offline-cluster path, through timm's own loader."""
    from safetensors.torch import save_file

    from rsseg_cli.compat import import_torchvision
    from rsseg_cli.engine.run import run_training

    import_torchvision()
    import timm

    torch.manual_seed(11)
    donor = timm.create_model(
        "vit_small_patch14_dinov2",
        pretrained=False,
        num_classes=0,
        depth=2,
        embed_dim=48,
        num_heads=3,
        patch_size=8,
        img_size=64,
    )
    path = tmp_path / "dinov2_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    overrides = [s for s in TINY_TRAIN if not s.startswith("model.weights")]
    cfg = load_config(
        overrides=[
            *overrides,
            f"model.weights={path}",
            "train.method=supervised",
            "train.iterations=1",
            "train.eval_every=1",
        ]
    )
    run = run_training(dataset, cfg, out=tmp_path / "run")
    # The run started from the file: block weights the single small step barely moved are close to the donor's.
    student = torch.load(run / "checkpoints" / "last.pt", weights_only=False)["train_state"]["model"]
    key = "blocks.1.mlp.fc2.weight"
    got = student[f"backbone.model.{key}"]
    assert (got - donor.state_dict()[key]).abs().max() < 1e-3


def test_evaluate_bad_input(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("evaluate")
    assert r.code == 2 and "no run" in r.err.lower() and "--checkpoint" in r.err
    r = cli("evaluate", "--checkpoint", tmp_path / "missing.pt", "--data", dataset)
    assert r.code == 2 and "does not exist" in r.err
    # A checkpoint trained on 4 bands against a 3-band dataset.
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.engine.run import run_training
    from rsseg_cli.synthetic import generate_sample

    run = run_training(
        dataset,
        load_config(
            overrides=[*TINY_TRAIN, "train.method=supervised", "train.iterations=1", "train.eval_every=1"]
        ),
        out=tmp_path / "run",
    )
    rgb = generate_sample(tmp_path / "rgb", height=256, width=256, bands=3)
    tile_scenes([rgb.scene], [rgb.labels], tmp_path / "rgbdata", load_config(overrides=["tile.chip_size=64"]))
    r = cli("evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--data", tmp_path / "rgbdata")
    assert r.code == 2 and "trained on 4 bands" in " ".join(r.err.split())
