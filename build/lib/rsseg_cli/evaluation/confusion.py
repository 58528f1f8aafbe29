"""A global confusion matrix accumulated over batches, chips or scene windows, on any torch device.

Rows are ground truth, columns are predictions. Every pixel of an update falls into exactly one bin of a
single histogram of size K*K + 3:

- ``t * K + p`` for a valid target ``t`` in 0..K-1 and a valid prediction ``p`` in 0..K-1,
- ``K*K``      target is the ignore index (nodata / unlabeled): not counted anywhere in the matrix,
- ``K*K + 1``  valid target but a prediction outside 0..K-1: reported as ``invalid_predictions``,
- ``K*K + 2``  target outside 0..K-1 and not the ignore index: reported as ``invalid_targets``.

One histogram means one pass over the pixels and no boolean indexing, so an update on a GPU never waits for
the host (boolean masks and ``bincount`` on CUDA both need the output size on the host).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rsseg_cli.config import IGNORE_INDEX

ArrayLike = torch.Tensor | np.ndarray


def _as_long_tensor(x: Any, name: str) -> torch.Tensor:
    """Class-id array -> int64 tensor (on its own device); reject floats, which usually mean logits."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "biu":
            raise TypeError(
                f"{name} must hold integer class ids, got dtype {a.dtype} (pass argmax, not scores)"
            )
        # Cast in numpy: torch has no (or limited) uint16/uint32 support, and int64 holds every id.
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must hold integer class ids, got dtype {t.dtype} (pass argmax, not scores)")
    return t.reshape(-1).to(torch.int64)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else np.shape(x)


def _accumulate(hist: torch.Tensor, idx: torch.Tensor) -> None:
    """hist[i] += count of i in idx. bincount on CPU (fastest there); a fixed-size scatter_add elsewhere
    because CUDA bincount reads the maximum back to the host. 1-D scatter_add has a deterministic CUDA
    implementation, so this also works under torch.use_deterministic_algorithms(True)."""
    if hist.device.type == "cpu":
        hist += torch.bincount(idx, minlength=hist.numel())
    else:
        _scatter_accumulate(hist, idx)


def _scatter_accumulate(hist: torch.Tensor, idx: torch.Tensor) -> None:
    ones = torch.ones((), dtype=hist.dtype, device=hist.device).expand(idx.numel())
    hist.scatter_add_(0, idx, ones)


class ConfusionMatrix:
    """Pixel confusion matrix for ``num_classes`` classes; rows = ground truth, columns = prediction.

    The accumulator is an int64 tensor that lives on the device of the first update (or the one given),
    so accumulation during GPU evaluation needs no host round-trip; reading ``matrix`` or the counters
    copies to the host once.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._size = self.num_classes**2 + 3
        self._hist: torch.Tensor | None = None
        if device is not None:
            self._hist = torch.zeros(self._size, dtype=torch.int64, device=device)

    # -- accumulation -------------------------------------------------------------------------------------

    def update(self, pred: ArrayLike, target: ArrayLike) -> ConfusionMatrix:
        """Add one batch of class ids (torch tensors on any device or numpy arrays, any matching shape)."""
        p = _as_long_tensor(pred, "pred")
        t = _as_long_tensor(target, "target")
        pred_shape, target_shape = _shape(pred), _shape(target)
        if pred_shape != target_shape:
            raise ValueError(f"pred shape {pred_shape} does not match target shape {target_shape}")
        if self._hist is None:
            self._hist = torch.zeros(self._size, dtype=torch.int64, device=t.device)
        # Inputs follow the accumulator (a no-op in the usual case where everything is on one device).
        # Blocking copies: a non-blocking device-to-host copy could be read before it has landed.
        p = p.to(self._hist.device)
        t = t.to(self._hist.device)

        k = self.num_classes
        kk = k * k
        idx = t * k + p
        idx = torch.where((p < 0) | (p >= k), kk + 1, idx)
        idx = torch.where((t < 0) | (t >= k), kk + 2, idx)
        # Ignore wins over everything, also when ignore_index is itself a class id (e.g. 0 = background).
        idx = torch.where(t == self.ignore_index, kk, idx)
        _accumulate(self._hist, idx)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (e.g. from another worker) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        if other.ignore_index != self.ignore_index:
            raise ValueError(f"cannot merge ignore index {other.ignore_index} into {self.ignore_index}")
        if other._hist is None:
            return self
        if self._hist is None:
            self._hist = other._hist.clone()
        else:
            self._hist += other._hist.to(self._hist.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over all torch.distributed ranks, in place (no-op when not distributed).

        Every rank must call it, also ranks that saw no data. Call it once, after the last update: calling
        it again would add the already-summed counts once more.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        hist = self._hist if self._hist is not None else torch.zeros(self._size, dtype=torch.int64)
        home = hist.device
        work = hist
        # NCCL reduces CUDA tensors only; move a CPU accumulator over and back.
        if dist.get_backend() == "nccl" and home.type != "cuda":
            work = hist.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        self._hist = work.to(home) if work is not hist else work
        return self

    def reset(self) -> ConfusionMatrix:
        """Zero all counts, keeping the device."""
        if self._hist is not None:
            self._hist.zero_()
        return self

    def to(self, device: torch.device | str) -> ConfusionMatrix:
        """Move the accumulator (later updates are moved to it)."""
        if self._hist is None:
            self._hist = torch.zeros(self._size, dtype=torch.int64, device=device)
        else:
            self._hist = self._hist.to(device)
        return self

    # -- reading ------------------------------------------------------------------------------------------

    def _host(self) -> np.ndarray:
        if self._hist is None:
            return np.zeros(self._size, dtype=np.int64)
        return self._hist.cpu().numpy().astype(np.int64, copy=True)

    @property
    def device(self) -> torch.device | None:
        return None if self._hist is None else self._hist.device

    @property
    def matrix(self) -> np.ndarray:
        """(K, K) int64 counts, rows = ground truth, columns = prediction."""
        k = self.num_classes
        return self._host()[: k * k].reshape(k, k)

    @property
    def ignored(self) -> int:
        """Pixels whose target was the ignore index."""
        return int(self._host()[self.num_classes**2])

    @property
    def invalid_predictions(self) -> int:
        """Pixels with a valid target but a predicted id outside 0..K-1 (counted in no matrix cell)."""
        return int(self._host()[self.num_classes**2 + 1])

    @property
    def invalid_targets(self) -> int:
        """Pixels whose target is neither a class id nor the ignore index (counted in no matrix cell)."""
        return int(self._host()[self.num_classes**2 + 2])

    @property
    def total(self) -> int:
        """Pixels counted in the matrix."""
        return int(self.matrix.sum())

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"device={self.device}, total={self.total})"
        )
