"""ExecuTorch ``.pte`` programs: XNNPACK fp32 and int8 (PT2E static quantization), Core ML delegate.

The int8 program quantizes only the network core (backbone + CBAM): ``prepare_pt2e``/``convert_pt2e``
run on the core alone and the converted core is wrapped back between the float32 photometric stage and
the float32 head/outputs, then exported and lowered as one program (``set_module_name`` filters do not
work on exported graphs in this executorch version; REFERENCE.md section 7).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mobiledr.export.context import ExportContext
from mobiledr.export.formats.base import Artifact, Format
from mobiledr.export.graph import DeployModel
from mobiledr.io import atomic_write_bytes

IOS_TARGET = "iOS16"  # the first Core ML version with ML programs, fp16 compute and the ops used here


def _lower(program: torch.export.ExportedProgram, partitioner: object) -> object:
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(program, partitioner=[partitioner]).to_executorch()


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


def quantized_model(context: ExportContext) -> DeployModel:
    """The deployed model with its core int8 (XNNPACK quantizer, per-channel weights), calibrated on
    the request's images; photometric stage and outputs stay float32."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = context.model
    with torch.no_grad():
        core = torch.export.export(model.core, (model.photometric(context.example),)).module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(core, quantizer)
        for batch in context.calibration_batches():
            prepared(model.photometric(batch))
        converted = convert_pt2e(prepared)
    return DeployModel(model.photometric, converted, model.post)  # eval() is not allowed on converted graphs


def export_xnnpack_fp32(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()
    program = _lower(context.exported(), _xnnpack())
    atomic_write_bytes(folder / "model.xnnpack-fp32.pte", program.buffer)
    atomic_write_bytes(folder / "golden" / "model.xnnpack-fp32.bpte", _bundled_program(context, program))
    return [
        Artifact(
            "model.xnnpack-fp32.pte", "pte-xnnpack-fp32", "pte", "executorch", "xnnpack", "fp32",
            extras={"bundled_program": "golden/model.xnnpack-fp32.bpte"}, export_seconds=time.perf_counter() - start,
        )
    ]


def export_xnnpack_int8(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()
    model = quantized_model(context)
    program = _lower(torch.export.export(model, (context.example,)), _xnnpack())
    atomic_write_bytes(folder / "model.xnnpack-int8.pte", program.buffer)
    quantization = {
        "method": "PT2E static (torchao prepare_pt2e/convert_pt2e)",
        "quantizer": "executorch XNNPACKQuantizer, get_symmetric_quantization_config(is_per_channel=True)",
        "weights": "int8 symmetric, per output channel",
        "activations": "int8 affine, per tensor",
        "quantized": "backbone + CBAM (core)",
        "float32": "photometric stage, head, softmax, heatmap, OOD score",
        "calibration": context.request.calibration_info,
    }
    return [
        Artifact(
            "model.xnnpack-int8.pte", "pte-xnnpack-int8", "pte", "executorch", "xnnpack", "int8",
            quantization=quantization, export_seconds=time.perf_counter() - start,
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
    program = _lower(context.exported(), CoreMLPartitioner(compile_specs=specs))
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
