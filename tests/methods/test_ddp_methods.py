"""RS-MTDF and Co2S train under torch DDP on two processes (their forward signatures differ from a
Segmenter's: DDP must see each step's single call and every trainable parameter used)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import TINY_TRAIN, torchrun
from tests.methods.test_co2s import TRAIN as CO2S_TRAIN
from tests.methods.test_rs_mtdf import TINY_TEACHERS


@pytest.mark.parametrize(
    ("method", "sets"), [("rs-mtdf", [*TINY_TRAIN, *TINY_TEACHERS]), ("co2s", CO2S_TRAIN)]
)
def test_method_trains_on_two_processes(dataset, tmp_path, method, sets):
    args = ["train", "--data", str(dataset), "--out", str(tmp_path / "run"), "--method", method]
    for s in [*sets, "train.labeled=1/4", "train.iterations=2", "train.eval_every=2"]:
        args += ["--set", s]
    proc = torchrun(2, args, tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["world_size"] == 2 and info["method"] == method
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert last["train_state"]["step"] == 2
