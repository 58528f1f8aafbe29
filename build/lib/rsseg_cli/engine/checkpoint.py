"""The checkpoint contract: one type that owns the on-disk format.

last.pt holds the whole training state; best.pt only what prediction needs. Both are self-contained for
prediction: the model spec, inference weights (never frozen teachers), class table, band list and order,
normalization statistics, dtype, chip and crop size, and the rsseg version. The file holds tensors and plain
data only and is read with `torch.load(weights_only=True)`: a file that needs arbitrary unpickling is refused,
never executed. Older formats are upgraded on reading (see `_UPGRADES`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsseg_cli import __version__
from rsseg_cli.atomic import atomic_file
from rsseg_cli.errors import UserError

if TYPE_CHECKING:  # torch is imported where files are read or written: an .onnx model's metadata builds a
    # Checkpoint (without weights) on machines without torch
    import torch
    from torch import nn

KIND = "rsseg-checkpoint"
FORMAT = 3  # 1: rsseg 0.1.0 (no "format" key); 2: no input scaling / statistics choice
GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32", "float32": "Float32", "float64": "Float64"}  # fmt: skip


@dataclass
class Checkpoint:
    """What `rsseg train` writes and every other command reads."""

    model: dict[str, Any]  # a models.spec.ModelSpec, as plain data
    state_dict: dict[str, torch.Tensor]
    method: str
    classes: list[dict[str, Any]]
    bands: list[dict[str, Any]]  # [{"index": 1-based band of the scene, "name": ...}, ...] in model order
    dtype: str | None
    normalization: dict[str, Any]
    chip_size: int
    crop: int
    step: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    # The prediction that validated best, for models offering several (Co2S: clip, dinov3 or ensemble).
    variant: str | None = None
    train_state: dict[str, Any] | None = None  # last.pt only: optimizer, EMA model, step, configuration
    rsseg_version: str = __version__
    format: int = FORMAT
    path: Path | None = field(default=None, compare=False)

    # ----------------------------------------------------------------------------------------------
    # Disk

    def save(self, path: Path) -> None:
        payload = {"kind": KIND, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "path"}}
        if self.train_state is None:
            del payload["train_state"]  # best.pt: prediction only
        payload["rsseg_version"] = __version__
        payload["format"] = FORMAT
        payload["palette"] = self.palette  # also readable without rsseg (product contract)
        import torch

        with atomic_file(Path(path)) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def read(cls, path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"The checkpoint {path} does not exist. Pass --checkpoint runs/<name>/checkpoints/best.pt."
            )
        import torch

        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # truncated, foreign or unsafe files raise many types
            # The restricted unpickler names the global it refused to load (a class or function to call).
            if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
                raise UserError(
                    f"{path} holds Python objects that would have to be executed to read it (arbitrary "
                    "unpickling), so rsseg refuses to load it. rsseg checkpoints hold tensors and plain data "
                    "only: pass a best.pt or last.pt written by `rsseg train`."
                ) from None
            raise UserError(
                f"{path} is not a readable rsseg checkpoint ({type(exc).__name__}: {_first_line(exc)})."
            ) from None
        if not isinstance(payload, dict) or payload.get("kind") != KIND:
            raise UserError(
                f"{path} is not an rsseg checkpoint. Pass a best.pt or last.pt written by `rsseg train`."
            )
        payload = upgrade(payload, path)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known}, path=path)

    # ----------------------------------------------------------------------------------------------
    # Use

    @property
    def palette(self) -> list[str | None]:
        return [c.get("color") for c in self.classes]

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    @property
    def band_names(self) -> list[str]:
        return [b["name"] for b in self.bands]

    @property
    def band_map(self) -> list[int | None]:
        return list(self.model.get("band_map") or [])

    def load_model(self, device: torch.device | str = "cpu", variant: str | None = None) -> nn.Module:
        """The network in eval mode with the checkpoint's weights; for a model with several predictions,
        the chosen one (`variant`, default the one that validated best)."""
        from rsseg_cli.models.spec import build, variants_of

        name = self.path or "The checkpoint"
        damaged = "it is damaged or from another rsseg version; pass another checkpoint or train again"
        try:
            model = build(self.model)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise UserError(
                f"{name}: its model description does not build ({_first_line(exc)}); {damaged}."
            ) from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            detail = next(
                (ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), _first_line(exc)
            ).rstrip(".")
            raise UserError(
                f"{name}: its weights do not match its own model description ({detail}); {damaged}."
            ) from None
        if variants_of(model):
            if variant or self.variant:  # else the model's own default prediction
                model.use(variant or self.variant)  # type: ignore[attr-defined]
        elif variant is not None:
            raise UserError(
                f"--student {variant} applies to checkpoints whose model offers several predictions; this "
                f"one ({self.method}) has one. Leave --student out."
            )
        return model.to(device).eval()

    def check_dataset(
        self, band_names: Sequence[str], class_names: Sequence[str], dtype: str | None, source: str
    ) -> None:
        """Refuse a dataset the model was not trained for: other bands, classes or pixel type."""
        self.check_bands(band_names, source, how="Tile with the same bands (tile.bands).")
        if list(class_names) != self.class_names:
            raise UserError(
                f"The checkpoint's classes ({', '.join(self.class_names)}) differ from {source}'s "
                f"({', '.join(class_names)}). Evaluate on a dataset tiled with the same class table."
            )
        self.check_dtype(dtype, source)

    def check_bands(self, band_names: Sequence[str], source: str, how: str) -> None:
        if len(band_names) != len(self.bands):
            raise UserError(
                f"The checkpoint was trained on {len(self.bands)} bands ({', '.join(self.band_names)}) but "
                f"{source} gives {len(band_names)} ({', '.join(band_names)}). {how}"
            )

    def check_dtype(self, dtype: str | None, source: str) -> None:
        if self.dtype is not None and dtype is not None and dtype != self.dtype:
            raise UserError(
                f"{source} holds {dtype} pixels but the checkpoint was trained on {self.dtype}, so its stored "
                f"statistics would not fit. Convert it to {self.dtype} the way the training scenes were made "
                f"(e.g. gdal_translate -ot {GDAL_TYPES.get(self.dtype, self.dtype)}), or train on {dtype} scenes."
            )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


# --------------------------------------------------------------------------------------------------
# Upgrades: format N -> N + 1, each a function of the raw payload. A reader always sees the newest format.


def _from_0_1_0(payload: dict[str, Any]) -> dict[str, Any]:
    """rsseg 0.1.0: an untyped model config with method parts as loose keys ("fusion", "co2s" +
    "concepts"); the Co2S variant under "student" (a name shared with the weights in train_state)."""
    old = dict(payload["model"])
    spec: dict[str, Any] = {
        k: old.get(k)
        for k in (
            "num_classes",
            "in_chans",
            "band_map",
            "backbone",
            "taps",
            "head",
            "head_features",
            "head_channels",
        )
    }
    spec["backbone_kwargs"] = dict(old.get("backbone_kwargs") or {})
    # 0.1.0 computed some parts differently from the released recipes (issue 13); its checkpoints keep that
    # behaviour so they predict as they did: CLIP skips through ln_post, rsseg 0.1's cost head, the fusion
    # resize without align_corners, the large DPT head on giant backbones.
    if spec.get("head") is None and str(spec.get("backbone") or "").startswith("dinov2_g"):
        spec["head"] = "l"
    if old.get("co2s"):
        students = {
            name: {k: v for k, v in s.items() if k not in ("kind", "num_classes", "in_chans", "band_map")}
            for name, s in old["co2s"].items()
        }
        if "clip" in students:
            students["clip"]["skip_path"] = "ln_post"
        for student in students.values():
            student["head"] = {**(student.get("head") or {}), "layout": "rsseg-0.1"}
        spec.update(
            architecture="co2s",
            parts={"students": students, "concepts": old.get("concepts") or []},
            backbone=None,
            backbone_kwargs={},
            taps=None,
            head=None,
            head_features=None,
            head_channels=None,
        )
    elif old.get("fusion"):
        spec.update(architecture="fusion-segmenter", parts={**old["fusion"], "align_corners": False})
    else:
        spec["architecture"] = "segmenter"
    new = {k: v for k, v in payload.items() if k not in ("model", "student", "band_map")}
    new["model"] = spec
    new["variant"] = payload.get("student")
    state = payload.get("train_state")
    if state is not None:
        new["train_state"] = {
            **{k: v for k, v in state.items() if k not in ("student", "teacher")},
            "model": state.get("student"),
            "ema": state.get("teacher"),
        }
    return new


def _from_format_2(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 2 and before: the percentile stretch and ImageNet statistics for every backbone, with no
    conversion between backbones (the model spec's input_stats stays null), recorded as such."""
    norm = dict(payload["normalization"])
    norm.setdefault("scaling", "percentile")
    norm.setdefault("stats", "imagenet")
    return {**payload, "normalization": norm}


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_0_1_0, 2: _from_format_2}


def upgrade(payload: dict[str, Any], path: Path | str = "checkpoint") -> dict[str, Any]:
    version = int(payload.get("format", 1))
    if version > FORMAT:
        raise UserError(
            f"{path} was written by a newer rsseg ({payload.get('rsseg_version', '?')}, checkpoint format "
            f"{version}); this is rsseg {__version__} (format {FORMAT}). Upgrade rsseg to read it."
        )
    while version < FORMAT:
        payload = _UPGRADES[version](payload)
        version += 1
        payload["format"] = version
    return payload
