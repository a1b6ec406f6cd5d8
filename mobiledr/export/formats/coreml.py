"""Core ML ``.mlpackage`` ML programs: float16 compute with an image input and a classifier output, plus
weight-compressed variants from coremltools' optimizers (int8 linear weights; 6-bit palettes).

Only convolution and linear weights are compressed (``op_type_configs``), so the photometric stage's
constants (blur taps, disc mask) and the OOD statistics keep their precision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mobiledr.export.context import ExportContext
from mobiledr.export.manifest import INPUT_NAME
from mobiledr.export.formats.base import Artifact, Format
from mobiledr.export.formats.executorch import IOS_TARGET

CLASS_LABEL = "classLabel"  # Core ML's predicted-label output of a classifier


def _common() -> dict[str, Any]:
    import coremltools as ct

    return {"convert_to": "mlprogram", "compute_precision": ct.precision.FLOAT16, "minimum_deployment_target": getattr(ct.target, IOS_TARGET)}


def _image_input(context: ExportContext) -> list[Any]:
    """The geometric stage's output as an RGB image, pixel values 0-255 unscaled (the photometric stage is in the graph)."""
    import coremltools as ct

    size = context.request.input_size
    return [ct.ImageType(name=INPUT_NAME, shape=(1, 3, size, size), scale=1.0, bias=[0.0, 0.0, 0.0], color_layout=ct.colorlayout.RGB)]


def _plain_model(context: ExportContext) -> Any:
    """The float16 ML program with an RGB image input (0-255, no scaling) and float32 tensor outputs."""
    import coremltools as ct
    import numpy as np

    def build() -> Any:
        return ct.convert(
            context.exported().run_decompositions({}),
            inputs=_image_input(context),
            outputs=[ct.TensorType(name=name, dtype=np.float32) for name in context.output_names],
            **_common(),
        )

    return context.memo("coreml-plain", build)


def _finish(context: ExportContext, model: Any) -> Any:
    """Make ``model`` a classifier when ``probs`` is exported (``classLabel`` and the ``classLabel_probs``
    dictionary replace the ``probs`` tensor) and describe it. Compression must come first: coremltools 9
    cannot re-serialize a classifier's label list after its optimizers ran."""
    import coremltools as ct

    if "probs" in context.output_names:
        program = model._mil_program
        # the fp16 pass recorded one output type per tensor output; the classifier changes the outputs
        program.functions["main"].set_output_types(None)
        labels = ct.ClassifierConfig(list(context.checkpoint.labels), predicted_feature_name=CLASS_LABEL, predicted_probabilities_output="probs")
        model = ct.convert(program, inputs=_image_input(context), classifier_config=labels, **_common())
    model.short_description = f"mobiledr {context.checkpoint.model_config.name}: {', '.join(context.checkpoint.labels)}"
    model.input_description[INPUT_NAME] = "Geometric-stage RGB fundus image (circle-cropped, square, model size)"
    return model


def _output_names(context: ExportContext) -> dict[str, str]:
    """Manifest output name -> Core ML feature name, where they differ."""
    return {"probs": f"{CLASS_LABEL}_probs", "label": CLASS_LABEL} if "probs" in context.output_names else {}


def _artifact(context: ExportContext, name: str, format_id: str, precision: str, quantization: dict[str, Any], start: float) -> Artifact:
    return Artifact(name, format_id, "mlpackage", "coreml", "coreml", precision, quantization,
                    output_names=_output_names(context), export_seconds=time.perf_counter() - start)


def export_fp16(context: ExportContext, folder: Path) -> list[Artifact]:
    start = time.perf_counter()
    model = _finish(context, _plain_model(context))
    model.save(str(folder / "model.fp16.mlpackage"))
    quantization = {"compute_precision": "float16", "minimum_deployment_target": IOS_TARGET}
    return [_artifact(context, "model.fp16.mlpackage", "coreml-fp16", "fp16", quantization, start)]


def _compressed(context: ExportContext, folder: Path, name: str, format_id: str, precision: str, config: Any, how: str, compress: Any) -> list[Artifact]:
    from coremltools.optimize.coreml import OptimizationConfig

    start = time.perf_counter()
    model = _finish(context, compress(_plain_model(context), OptimizationConfig(op_type_configs={"conv": config, "linear": config})))
    model.save(str(folder / name))
    quantization = {"compute_precision": "float16", "weights": how, "compressed_ops": ["conv", "linear"], "minimum_deployment_target": IOS_TARGET}
    return [_artifact(context, name, format_id, precision, quantization, start)]


def export_int8_weights(context: ExportContext, folder: Path) -> list[Artifact]:
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, linear_quantize_weights

    config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    how = "int8 linear symmetric, per channel (coremltools.optimize.coreml.linear_quantize_weights)"
    return _compressed(context, folder, "model.int8w.mlpackage", "coreml-int8w", "int8-weights", config, how, linear_quantize_weights)


def export_palettized(context: ExportContext, folder: Path) -> list[Artifact]:
    from coremltools.optimize.coreml import OpPalettizerConfig, palettize_weights

    config = OpPalettizerConfig(mode="kmeans", nbits=6, granularity="per_tensor")
    how = "6-bit k-means palette per tensor (coremltools.optimize.coreml.palettize_weights)"
    return _compressed(context, folder, "model.pal6.mlpackage", "coreml-pal6", "palettized-6bit", config, how, palettize_weights)


FORMATS = [
    Format("coreml-fp16", "Core ML ML program, float16 compute, image input, classifier output", export_fp16, cost=12),
    Format("coreml-int8w", "Core ML, int8 linear-quantized weights", export_int8_weights, cost=15),
    Format("coreml-pal6", "Core ML, 6-bit palettized weights", export_palettized, cost=25),
]
