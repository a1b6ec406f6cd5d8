"""``--localize``: where in the network an int8 artifact's error appears (ONNX; see EXECUTORCH_NOTE for .pte).

ONNX QDQ models: onnxruntime's QDQ debugging tools (``onnxruntime.quantization.qdq_loss_debug``)
save every intermediate tensor of the float model and of the QDQ model on the same images, then
measure each tensor's SQNR. Two numbers per tensor:

- ``xmodel_err``: float tensor against the QDQ model's tensor, i.e. the error accumulated up to it;
- ``qdq_err``: the QDQ model's tensor before against after its own quantize/dequantize, i.e. that
  tensor's rounding and clipping alone.

``drop_db`` is the SQNR a node loses against its worst input. The first layer where error jumps is
the first node that costs at least 6 dB (one bit) and leaves its output below 30 dB (3 % RMS error).
"""

from __future__ import annotations

import ast
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mobiledr.export.manifest import INPUT_NAME
from mobiledr.export.manifest import Manifest
from mobiledr.parity.inputs import ParityInputs

EXACT_DB = 120.0  # SQNR above this is float rounding (identical tensors give about 400 dB, the eps floor)
JUMP_DB = 6.0  # one bit of effective resolution
OK_DB = 30.0  # a well-scaled 8-bit tensor gives 40-48 dB; below 30 dB the RMS error exceeds 3 %
MAX_IMAGES = 16
SHOWN = 8


def _module(node: Any) -> str | None:
    """The torch module path the dynamo ONNX exporter recorded for a node (``pkg.torch.onnx.name_scopes``)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)
            return scopes[-2] if len(scopes) >= 2 else None
    return None


def onnx_layers(float_path: Path, qdq_path: Path, images: np.ndarray, workdir: Path) -> list[dict[str, Any]]:
    """One row per tensor both models produce, in the float graph's (topological) order."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_signal_to_quantization_noice_ratio,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{INPUT_NAME: np.ascontiguousarray(images[i : i + 1], np.float32)} for i in range(len(images))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    float_copy, qdq_copy = workdir / "float.onnx", workdir / "qdq.onnx"  # the tools write files next to their inputs
    shutil.copyfile(float_path, float_copy)
    shutil.copyfile(qdq_path, qdq_copy)
    modify_model_output_intermediate_tensors(float_copy, workdir / "float.aug.onnx")
    modify_model_output_intermediate_tensors(qdq_copy, workdir / "qdq.aug.onnx")
    float_acts = collect_activations(str(workdir / "float.aug.onnx"), Images())
    qdq_acts = collect_activations(str(workdir / "qdq.aug.onnx"), Images())
    matching = create_activation_matching(qdq_acts, float_acts)
    errors = compute_activation_error({k: v for k, v in matching.items() if "float" in v})  # it needs a float side
    qdq_producers = {o: n.op_type for n in onnx.load(qdq_copy).graph.node for o in n.output}
    graph = onnx.load(float_copy).graph
    known: dict[str, float] = {i.name: math.inf for i in graph.input}  # accumulated SQNR per tensor
    rows = []
    for node in graph.node:
        input_err = min([known[t] for t in node.input if t in known], default=math.inf)
        for tensor in node.output:
            if tensor in errors:
                xmodel, qdq = errors[tensor]["xmodel_err"], errors[tensor]["qdq_err"]
                if node.op_type == "Relu" and qdq_producers.get(tensor) != "Relu":
                    # the quantizer dropped this Relu (the Q's [0, max] range clips); measure against relu(pre_qdq)
                    m = matching[tensor]
                    qdq = compute_signal_to_quantization_noice_ratio([np.maximum(p, 0) for p in m["pre_qdq"]], list(m["post_qdq"]))
            elif tensor in float_acts and tensor in qdq_acts:
                xmodel, qdq = compute_signal_to_quantization_noice_ratio(float_acts[tensor], qdq_acts[tensor]), None
            else:
                known[tensor] = input_err  # a tensor the quantizer folded away inherits its inputs' error
                continue
            known[tensor] = float(xmodel)
            rows.append({
                "node": node.name, "module": _module(node), "op_type": node.op_type, "quantized": qdq is not None,
                "sqnr_db": float(xmodel), "own_sqnr_db": None if qdq is None else float(qdq),
                "drop_db": min(input_err, EXACT_DB) - min(float(xmodel), EXACT_DB),
            })  # fmt: skip
    return rows


def first_jump(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first node that costs >= JUMP_DB against its inputs and leaves its output below OK_DB.

    Measured against the node's own inputs, not the previous row, so parallel branches (squeeze-excite
    gates, residuals) stay apart."""
    return next((r for r in rows if r["drop_db"] >= JUMP_DB and r["sqnr_db"] < OK_DB), None)


def _images(inputs: ParityInputs, artifact: dict[str, Any]) -> np.ndarray:
    """Up to MAX_IMAGES inputs, the images whose decision flipped first."""
    flipped = {f["image"] for f in artifact.get("flipped", [])}
    order = sorted(range(len(inputs.names)), key=lambda i: inputs.names[i] not in flipped)
    return inputs.images[order[:MAX_IMAGES]]


def _summary(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    jump = first_jump(rows)
    worst = sorted((r for r in rows if r["sqnr_db"] < OK_DB), key=lambda r: -r["drop_db"])[:SHOWN]
    shown = ([jump] if jump else []) + [r for r in worst if r is not jump]
    table = [{"node": r["node"], "module": r["module"] or "-", "op": r["op_type"], "SQNR dB": r["sqnr_db"],
              "own SQNR dB": r["own_sqnr_db"] if r["own_sqnr_db"] is not None else "-", "drop dB": r["drop_db"]} for r in shown]  # fmt: skip
    if jump is None:
        return f"no single layer loses >= {JUMP_DB:g} dB; the error accumulates gradually (largest drops below)", table
    own = f", its own quantization {jump['own_sqnr_db']:.1f} dB" if jump["own_sqnr_db"] is not None else ""
    return (f"error jumps first at {jump['node']} ({jump['op_type']} in {jump['module'] or '?'}): SQNR {jump['sqnr_db']:.1f} dB, "
            f"-{jump['drop_db']:.1f} dB against its inputs{own}"), table  # fmt: skip


def localize_failures(bundle: Path, manifest: Manifest, artifacts: list[dict[str, Any]], inputs: ParityInputs) -> None:
    """Add a ``localization`` entry to every failing int8 artifact whose runtime supports it."""
    float_onnx = next((a["file"] for a in manifest.artifacts if a["format"] == "onnx-fp32" and a["kind"] == "onnx"), None)
    done: dict[str, dict[str, Any]] = {}  # the .onnx and .ort of one format share the QDQ model's localization
    for artifact in artifacts:
        if artifact["verdict"] != "FAIL" or artifact["precision"] != "int8" or "errors" not in artifact:
            continue
        if artifact["kind"] in ("onnx", "ort"):
            if float_onnx is None:
                artifact["localization"] = {"method": "onnxruntime qdq_loss_debug", "summary": "needs the bundle's onnx-fp32 model (export --formats onnx-fp32)"}
                continue
            qdq = next(a["file"] for a in manifest.artifacts if a["format"] == artifact["format"] and a["kind"] == "onnx")
            if qdq not in done:
                with tempfile.TemporaryDirectory(prefix="mobiledr-localize-") as work:
                    rows = onnx_layers(bundle / float_onnx, bundle / qdq, _images(inputs, artifact), Path(work))
                summary, table = _summary(rows)
                done[qdq] = {"method": f"onnxruntime qdq_loss_debug: {float_onnx} vs {qdq}", "summary": summary, "layers": table, "all_layers": rows}
            artifact["localization"] = done[qdq]
        elif artifact["kind"] == "pte":
            artifact["localization"] = {"method": "executorch devtools", "summary": EXECUTORCH_NOTE}


# What executorch 1.5.1's devtools can and cannot do here (measured on the demo bundle).
EXECUTORCH_NOTE = (
    "not available with executorch 1.5.1: ETDump records only the XNNPACK delegate's boundary tensors (the whole int8 core "
    "is one DELEGATE_CALL), and Inspector.calculate_numeric_gap fails on these programs (KeyError 'photometric.kernel_h'; "
    "with the edge-dialect reference, a (576) vs (4) shape mismatch). The onnx-int8 localization shows the same core's weak layers."
)
