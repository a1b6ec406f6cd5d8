"""Int8 recipes chosen against the clinical gate: what ``--int8 auto`` does for every int8 format.

Each recipe is tried from fastest to most robust; an attempt's artifact runs on the validation split
(``ExportRequest.gate``; never the test split) and is judged by the int8 table of the tolerance policy,
the same rules ``mobiledr parity`` applies. ``auto`` keeps the first recipe that passes (the best
decision agreement when none does); every attempt goes into the artifact's ``int8_gate`` entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from mobiledr.errors import MobiledrError
from mobiledr.export.context import ExportContext

T = TypeVar("T")

# name -> what it keeps in float32, in the same delegate / graph as the int8 convolutions
RECIPES: dict[str, str] = {
    "ptq": "PT2E / ONNX Runtime static int8 of the whole network core (backbone + CBAM)",
    "ptq-float-attention": "static int8 with the squeeze-excite blocks (pooling, fc1/fc2, hard-sigmoid gate, multiply) and the CBAM gates in float32",
}
FLOAT_ATTENTION = ("SqueezeExcitation", "ChannelAttention", "SpatialAttention")  # module classes ptq-float-attention keeps in float


def float_modules(recipe: str) -> tuple[str, ...]:
    """Class names of the modules ``recipe`` keeps in float32."""
    return FLOAT_ATTENTION if recipe == "ptq-float-attention" else ()


def _verdict(context: ExportContext, actual: dict[str, np.ndarray]) -> dict[str, Any]:
    from mobiledr.parity.compare import Decision
    from mobiledr.parity.judge import judge
    from mobiledr.parity.policy import Policy

    request, checkpoint = context.request, context.checkpoint
    binary = len(checkpoint.labels) == 2
    decision = Decision(checkpoint.threshold if binary else None, 1 if binary else None)
    ood = checkpoint.ood.threshold if checkpoint.ood is not None and "ood_score" in context.output_names else None
    judgement = judge(Policy.load(), "int8", context.gate_reference(), actual, decision, ood, request.gate_labels, request.gate_groups, resamples=500)
    return judgement.summary()


def choose(
    context: ExportContext, build: Callable[[str], T], run: Callable[[T, list[torch.Tensor]], dict[str, np.ndarray]], size: Callable[[T], int]
) -> tuple[T, str, dict[str, Any]]:
    """(artifact, recipe, int8_gate entry): ``build(recipe)`` makes an artifact, ``run(artifact, batches)``
    runs it on (1, 3, S, S) inputs and returns its outputs by name."""
    wanted = context.request.int8
    if wanted != "auto" and wanted not in RECIPES:
        raise MobiledrError(f"unknown int8 recipe {wanted!r}; choose auto or one of {', '.join(RECIPES)}")
    judged = context.request.gate is not None
    attempts: list[dict[str, Any]] = []
    best: tuple[tuple[bool, float], T, str] | None = None
    for recipe in list(RECIPES) if wanted == "auto" else [wanted]:
        start = time.perf_counter()
        artifact = build(recipe)
        attempt: dict[str, Any] = {"recipe": recipe, "size_bytes": size(artifact)}
        if judged:
            attempt |= _verdict(context, run(artifact, context.gate_batches()))
        attempt["seconds"] = round(time.perf_counter() - start, 2)
        attempts.append(attempt)
        score = (attempt.get("verdict") == "PASS", attempt.get("decision_agreement") or 0.0)
        if best is None or score > best[0]:
            best = (score, artifact, recipe)
        if not judged or attempt["verdict"] == "PASS":
            break
    assert best is not None
    _, artifact, recipe = best
    verdict = next(a.get("verdict") for a in attempts if a["recipe"] == recipe)  # None without validation images
    gate = {"split": context.request.gate_info, "policy": "int8", "requested": wanted, "chosen": recipe, "verdict": verdict, "attempts": attempts}
    return artifact, recipe, gate
