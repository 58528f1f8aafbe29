"""Frozen CLIP text embeddings as class queries (Co2S's explicit guidance for the CLIP student).

Two variants, as in the released code (methods.md):
- "single" (the release's default and its experiments): one prompt per class, "a photo of a {name}", the
  embedding L2-normalized;
- "concept-avg": every string of the class's list (its name, then its concepts: synonyms and sub-types,
  water -> lake, river, pond) is encoded with the same prompt, the RAW embeddings are averaged and the mean
  is L2-normalized (so a concept with a longer embedding weighs more, as in the release).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.presets import get_preset

PROMPT = "a photo of a {}"
VARIANTS = ("single", "concept-avg")


def class_concepts(classes: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Per class, its name followed by its "concepts" (duplicates and blanks dropped, order kept).

    A class without concepts is described by its name alone.
    """
    out: list[list[str]] = []
    for cls in classes:
        words = [str(cls["name"]), *[str(c) for c in (cls.get("concepts") or [])]]
        seen: dict[str, None] = {}
        for word in words:
            word = word.strip()
            if word and word not in seen:
                seen[word] = None
        if not seen:
            raise ValueError(f"class {cls!r} has no name to describe it")
        out.append(list(seen))
    return out


def encode_class_queries(
    clip_model: nn.Module,
    model_name: str,
    concepts: Sequence[Sequence[str]],
    device: torch.device | str | None = None,
    variant: str = "single",
) -> torch.Tensor:
    """(K, D) fp32 unit class queries from an open_clip CLIP model's text tower.

    concepts: per class its name followed by its concepts (`class_concepts`); "single" encodes the name
    alone, "concept-avg" the whole list (see the module docstring).
    model_name: the open_clip model name whose tokenizer fits the model (e.g. "ViT-B-16-quickgelu"); an
    rsseg backbone preset name (e.g. "clip_b16") is translated. The text tower runs in eval mode without
    gradients where the model lies; every submodule's train/eval mode is restored afterwards. The result is
    put on `device` (default: the model's device).
    """
    import open_clip

    if not concepts or any(len(c) == 0 for c in concepts):
        raise ValueError("every class needs at least one concept")
    if variant not in VARIANTS:
        raise UserError(f"Unknown text query variant {variant!r}: choose one of {', '.join(VARIANTS)}.")
    if variant == "single":
        concepts = [[cls[0]] for cls in concepts]
    with suppress(UserError):  # an rsseg backbone name; otherwise an open_clip model name
        model_name = get_preset(model_name).model
    context_length = getattr(clip_model, "context_length", None)
    tokenizer = open_clip.get_tokenizer(model_name, context_length=context_length)
    texts = [PROMPT.format(c) for cls in concepts for c in cls]
    model_device = next(clip_model.parameters()).device
    tokens = tokenizer(texts).to(model_device)

    modes = {m: m.training for m in clip_model.modules()}
    clip_model.eval()
    try:
        with torch.no_grad():
            emb = clip_model.encode_text(tokens).float()
    finally:
        for m, training in modes.items():
            m.training = training
    counts = torch.tensor([len(c) for c in concepts], device=emb.device)
    owner = torch.repeat_interleave(torch.arange(len(concepts), device=emb.device), counts)
    mean = torch.zeros(len(concepts), emb.shape[1], device=emb.device).index_add_(0, owner, emb)
    queries = F.normalize(mean / counts[:, None], dim=-1)
    return queries.to(device if device is not None else model_device)
