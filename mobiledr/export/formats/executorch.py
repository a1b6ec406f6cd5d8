"""ExecuTorch ``.pte`` programs: XNNPACK fp32 and int8 (PT2E static quantization), Core ML delegate.

The int8 program quantizes only the network core (backbone + CBAM): ``prepare_pt2e``/``convert_pt2e``
run on the core alone and the converted core is wrapped back between the float32 photometric stage and
the float32 head/outputs, then exported and lowered as one program (``set_module_name`` filters do not
work on exported graphs in this executorch version).

Int8 recipes (:mod:`mobiledr.export.int8`) keep module types out of the quantizer's reach
(``XNNPACKQuantizer.set_module_type(type, None)``): they stay float32 inside the same XNNPACK delegate.
The recipe is chosen against the int8 gate on the validation split.

Every XNNPACK program is lowered with XNNPACK's edge compile config and its delegation summary
(``executorch.devtools.backend_debug.get_delegation_info``) is recorded in the manifest: the whole
graph, photometric stage and outputs included, is expected to run inside one XNNPACK delegate.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobiledr.export import int8
from mobiledr.export.context import ExportContext
from mobiledr.export.formats.base import Artifact, Format
from mobiledr.export.graph import DeployModel
from mobiledr.io import atomic_write_bytes

IOS_TARGET = "iOS16"  # the first Core ML version with ML programs, fp16 compute and the ops used here


def delegation_summary(graph_module: torch.fx.GraphModule) -> dict[str, Any]:
    """Delegate count and ops inside/outside the delegates, by name (``getitem``, which only unpacks a
    delegate's outputs, is not counted as an op)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    table = info.get_operator_delegation_dataframe()
    rows = [r for r in table.itertuples(index=False) if r.op_type not in ("Total", "getitem")]
    return {
        "delegates": int(info.num_delegated_subgraphs),
        "ops_delegated": int(sum(r.occurrences_in_delegated_graphs for r in rows)),
        "ops_outside": int(sum(r.occurrences_in_non_delegated_graphs for r in rows)),
        "outside": {r.op_type: int(r.occurrences_in_non_delegated_graphs) for r in rows if r.occurrences_in_non_delegated_graphs},
    }


def _lower(program: torch.export.ExportedProgram, partitioner: object, xnnpack: bool = False) -> tuple[object, dict[str, Any]]:
    """The ExecuTorch program and its delegation summary."""
    from executorch.exir import to_edge_transform_and_lower

    config = None
    if xnnpack:
        from executorch.backends.xnnpack.utils.configs import get_xnnpack_edge_compile_config

        config = get_xnnpack_edge_compile_config()
    edge = to_edge_transform_and_lower(program, partitioner=[partitioner], compile_config=config)
    summary = delegation_summary(edge.exported_program().graph_module)
    return edge.to_executorch(), summary


def _xnnpack() -> object:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner()


def _bundled_program(context: ExportContext, program: object) -> bytes:
    """A BundledProgram carrying the golden vectors and their PyTorch reference outputs."""
    from executorch.devtools import BundledProgram
    from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
    from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

    cases = [MethodTestCase(inputs=[image], expected_outputs=list(outputs)) for image, outputs in context.golden_expected()]
    bundled = BundledProgram(program, [MethodTestSuite(method_name="forward", test_cases=cases)])
    return serialize_from_bundled_program_to_flatbuffer(bundled)


def quantized_model(context: ExportContext, recipe: str = "ptq") -> DeployModel:
    """The deployed model with its core int8 (XNNPACK quantizer, per-channel weights), calibrated on
    the request's images; photometric stage and outputs stay float32, and so do the module types the
    recipe keeps in float."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = context.model
    with torch.no_grad():
        core = torch.export.export(model.core, (model.photometric(context.example),)).module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        for module_type in _module_types(int8.float_modules(recipe)):
            quantizer.set_module_type(module_type, None)
        prepared = prepare_pt2e(core, quantizer)
        for batch in context.calibration_batches():
            prepared(model.photometric(batch))
        converted = convert_pt2e(prepared)
    return DeployModel(model.photometric, converted, model.post)  # eval() is not allowed on converted graphs


def _module_types(names: tuple[str, ...]) -> list[type]:
    from mobiledr.models.cbam import ChannelAttention, SpatialAttention
    from mobiledr.models.mobilenetv3 import SqueezeExcitation

    known = {t.__name__: t for t in (SqueezeExcitation, ChannelAttention, SpatialAttention)}
    return [known[name] for name in names]


def _run_program(program: object, batches: list[torch.Tensor], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(program.buffer).load_method("forward")
    rows = [method.execute([x]) for x in batches]
    return {name: np.concatenate([row[k].numpy() for row in rows]) for k, name in enumerate(names)}


def export_xnnpack_fp32(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()
    program, delegation = _lower(context.exported(), _xnnpack(), xnnpack=True)
    atomic_write_bytes(folder / "model.xnnpack-fp32.pte", program.buffer)
    atomic_write_bytes(folder / "golden" / "model.xnnpack-fp32.bpte", _bundled_program(context, program))
    return [
        Artifact(
            "model.xnnpack-fp32.pte", "pte-xnnpack-fp32", "pte", "executorch", "xnnpack", "fp32",
            extras={"bundled_program": "golden/model.xnnpack-fp32.bpte"}, export_seconds=time.perf_counter() - start, delegation=delegation,
        )
    ]


def export_xnnpack_int8(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()

    def build(recipe: str) -> tuple[object, dict[str, Any]]:
        return _lower(torch.export.export(quantized_model(context, recipe), (context.example,)), _xnnpack(), xnnpack=True)

    (program, delegation), recipe, gate = int8.choose(
        context, build, lambda lowered, batches: _run_program(lowered[0], batches, context.output_names), lambda lowered: len(lowered[0].buffer)
    )
    atomic_write_bytes(folder / "model.xnnpack-int8.pte", program.buffer)
    quantization = {
        "method": "PT2E static (torchao prepare_pt2e/convert_pt2e)",
        "quantizer": "executorch XNNPACKQuantizer, get_symmetric_quantization_config(is_per_channel=True)",
        "recipe": recipe,
        "recipe_description": int8.RECIPES[recipe],
        "weights": "int8 symmetric, per output channel",
        "activations": "int8 affine, per tensor",
        "quantized": "backbone + CBAM (core)" + ("" if recipe == "ptq" else ", except the squeeze-excite blocks and CBAM gates"),
        "float32": "photometric stage, head, softmax, heatmap, OOD score",
        "calibration": context.request.calibration_info,
    }
    return [
        Artifact(
            "model.xnnpack-int8.pte", "pte-xnnpack-int8", "pte", "executorch", "xnnpack", "int8",
            quantization=quantization, export_seconds=time.perf_counter() - start, delegation=delegation, int8_gate=gate,
        )
    ]


def export_coreml_delegate(context: ExportContext, folder: Path) -> list[Artifact]:
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    start = time.perf_counter()
    specs = CoreMLBackend.generate_compile_specs(
        compute_precision=ct.precision.FLOAT16, minimum_deployment_target=getattr(ct.target, IOS_TARGET)
    )
    program, _ = _lower(context.exported(), CoreMLPartitioner(compile_specs=specs))
    atomic_write_bytes(folder / "model.coreml-fp16.pte", program.buffer)
    return [
        Artifact(
            "model.coreml-fp16.pte", "pte-coreml", "pte", "executorch", "coreml", "fp16",
            quantization={"compute_precision": "float16", "minimum_deployment_target": IOS_TARGET},
            export_seconds=time.perf_counter() - start,
        )
    ]


FORMATS = [
    Format("pte-xnnpack-fp32", "ExecuTorch, XNNPACK delegate, float32 (+ BundledProgram with golden vectors)", export_xnnpack_fp32, cost=45),
    Format("pte-xnnpack-int8", "ExecuTorch, XNNPACK delegate, int8 PT2E static quantization", export_xnnpack_int8, calibrated=True, cost=80),
    Format("pte-coreml", "ExecuTorch, Core ML delegate, float16 compute", export_coreml_delegate, cost=22),
]
