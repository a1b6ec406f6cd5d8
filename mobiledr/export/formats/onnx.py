"""ONNX fp32 and int8 (static QDQ, per-channel, calibrated) models and their ``.ort`` conversions for
ONNX Runtime Mobile, each with the ORT mobile-usability report next to it."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mobiledr.errors import MobiledrError
from mobiledr.export import int8
from mobiledr.export.context import ExportContext
from mobiledr.export.manifest import INPUT_NAME
from mobiledr.export.formats.base import Artifact, Format

OPSET = 18
CORE_SCOPE = "/core:"  # the exporter's per-node module path: only the network core is quantized


def _fp32_model(context: ExportContext) -> bytes:
    """The float32 ONNX model from the shared exported program, checked with ``onnx.checker`` (full)."""
    import onnx
    import torch

    def build() -> bytes:
        program = torch.onnx.export(
            context.exported(), (context.example,), dynamo=True, external_data=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=list(context.output_names), verbose=False,
        )
        model = program.model_proto
        onnx.checker.check_model(model, full_check=True)
        return model.SerializeToString()

    return context.memo("onnx-fp32", build)


def _usability_report(path: Path) -> str:
    """ONNX Runtime's mobile-usability analysis of ``path`` as text."""
    from onnxruntime.tools.mobile_helpers import usability_checker

    stream = io.StringIO()
    logger = logging.getLogger(f"mobiledr.ort-usability.{path.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    disabled = logging.root.manager.disable  # the export silences logging below ERROR; this report is wanted
    logging.disable(logging.NOTSET)
    try:
        usability_checker.analyze_model(path, skip_optimize=False, logger=logger)
    finally:
        logging.disable(disabled)
        logger.removeHandler(handler)
    return stream.getvalue()


def _to_ort(onnx_path: Path, folder: Path) -> tuple[str, str]:
    """Convert to the ORT flatbuffer format (fixed optimizations); returns the ``.ort`` file name and the
    operator list a reduced ONNX Runtime Mobile build needs."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory(dir=folder) as scratch, contextlib.redirect_stdout(io.StringIO()):
        source = Path(scratch) / onnx_path.name
        shutil.copyfile(onnx_path, source)
        convert_onnx_models_to_ort(source, Path(scratch) / "out", optimization_styles=[OptimizationStyle.Fixed])
        produced = sorted((Path(scratch) / "out").glob("*.ort"))
        operators = sorted((Path(scratch) / "out").glob("*.config"))
        if len(produced) != 1 or len(operators) != 1:
            raise MobiledrError(f"{onnx_path.name}: ORT conversion produced {len(produced)} .ort and {len(operators)} operator files")
        name, config = onnx_path.with_suffix(".ort").name, onnx_path.with_suffix(".required_operators.config").name
        shutil.move(produced[0], folder / name)
        shutil.move(operators[0], folder / config)
    return name, config


def _write_pair(context: ExportContext, folder: Path, stem: str, data: bytes, format_id: str, precision: str,
                quantization: dict | None, start: float) -> list[Artifact]:
    onnx_path = folder / f"{stem}.onnx"
    onnx_path.write_bytes(data)
    report = f"{stem}.usability.txt"
    (folder / report).write_text(_usability_report(onnx_path))
    onnx_seconds = time.perf_counter() - start
    ort_name, operators = _to_ort(onnx_path, folder)
    return [
        Artifact(onnx_path.name, format_id, "onnx", "onnxruntime", "cpu", precision, quantization,
                 extras={"usability_report": report}, export_seconds=onnx_seconds),
        Artifact(ort_name, format_id, "ort", "onnxruntime-mobile", "cpu", precision, quantization,
                 extras={"usability_report": report, "required_operators": operators, "source": onnx_path.name}, export_seconds=time.perf_counter() - start),
    ]


def export_fp32(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()
    return _write_pair(context, folder, "model.fp32", _fp32_model(context), "onnx-fp32", "fp32", None, start)


class _Images:
    """``onnxruntime.quantization.CalibrationDataReader`` over the context's calibration images."""

    def __init__(self, context: ExportContext) -> None:
        self._batches = iter([{INPUT_NAME: batch.numpy()} for batch in context.calibration_batches()])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _quantize(context: ExportContext, recipe: str, scratch: Path) -> tuple[bytes, int]:
    """The int8 QDQ model of ``recipe`` and how many nodes it keeps in float32: everything outside the
    network core, and the modules the recipe keeps in float (by the exporter's per-node module scopes)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, prepared, quantized = (scratch / name for name in (f"{recipe}.fp32.onnx", f"{recipe}.pre.onnx", f"{recipe}.int8.onnx"))
    source.write_bytes(_fp32_model(context))
    # shape inference only: ORT's graph optimizer would drop the per-node module scopes read below
    quant_pre_process(str(source), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
    model = onnx.load(prepared)
    floats = int8.float_modules(recipe)

    def keep(node: onnx.NodeProto) -> bool:
        scope = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
        classes = {segment.rsplit(".", 1)[-1] for segment in scope.split("/")}  # ".../block.2: mobiledr.models.mobilenetv3.SqueezeExcitation/..."
        return CORE_SCOPE not in scope or any(name in classes for name in floats)

    keep_float = [node.name for node in model.graph.node if keep(node)]
    if len(keep_float) == len(model.graph.node):
        raise MobiledrError("no node of the network core found to quantize (module scopes missing from the ONNX graph)")
    quantize_static(
        str(prepared), str(quantized), _Images(context), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=keep_float,
    )
    data = quantized.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return data, len(keep_float)


def _run(data: bytes, batches: list, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    rows = [session.run(list(names), {INPUT_NAME: batch.numpy()}) for batch in batches]
    return {name: np.concatenate([row[k] for row in rows]) for k, name in enumerate(names)}


def export_int8(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()
    _Images(context)  # fails early without calibration images
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        (data, float_nodes), recipe, gate = int8.choose(
            context, lambda recipe: _quantize(context, recipe, Path(scratch)),
            lambda quantized, batches: _run(quantized[0], batches, context.output_names), lambda quantized: len(quantized[0]),
        )  # fmt: skip
    quantization = {
        "method": "onnxruntime.quantization.quantize_static, QDQ format",
        "recipe": recipe,
        "recipe_description": int8.RECIPES[recipe],
        "weights": "int8 symmetric, per output channel",
        "activations": "uint8 asymmetric, per tensor, MinMax calibration",
        "quantized": "backbone + CBAM (core)" + ("" if recipe == "ptq" else ", except the squeeze-excite blocks and CBAM gates"),
        "float32": "photometric stage, head, softmax, heatmap, OOD score",
        "float_nodes": float_nodes,
        "calibration": context.request.calibration_info,
    }
    artifacts = _write_pair(context, folder, "model.int8", data, "onnx-int8", "int8", quantization, start)
    for artifact in artifacts:
        artifact.int8_gate = gate
    return artifacts


FORMATS = [
    Format("onnx-fp32", "ONNX float32 (+ .ort for ONNX Runtime Mobile)", export_fp32, cost=15),
    Format("onnx-int8", "ONNX int8 static QDQ, per-channel (+ .ort)", export_int8, calibrated=True, cost=30),
]
