"""ONNX file -> serialised TensorRT engine through the TensorRT Python API.

One optimisation profile per engine, from the spec (NetworkSpec.trt_profile over its batch_range).
fp16 / bf16: BuilderFlag.FP16 / BF16 lets TensorRT pick that precision per layer, except the sinusoidal
timestep embedding, which stays fp32: sin(t w) with t up to 999 needs more than fp16's 11-bit mantissa
(at t ~ 1000 an fp16 step is 0.5 rad; bf16 keeps 8 bits). Those layers are pinned to fp32 with precision
constraints. This is TensorRT 10's weakly typed build; a TensorRT without the flag (TensorRT 11 removed
the precision flags) stops with a clear ExportError (fp32 engines build with both).
"""

from __future__ import annotations

from pathlib import Path

from fv.engine.atomic import atomic_write_bytes
from fv.engine.backends import BackendError
from fv.engine.backends.trt_backend import require_tensorrt
from fv.engine.iospec import NetworkSpec
from fv.export.errors import ExportError

FP32_SCOPES = ("time_embed",)  # ONNX node-name scopes that must compute in fp32 under fp16 / bf16
FLAGS = {"fp16": "FP16", "bf16": "BF16"}  # the BuilderFlag that lets TensorRT use each reduced precision


def tensorrt():
    """The tensorrt module, or ExportError saying what is missing."""
    try:
        return require_tensorrt()
    except BackendError as e:
        raise ExportError(f"--trt: {e}") from None


def precision_flag(trt, precision: str):
    """The BuilderFlag for `precision` (None for fp32), or ExportError when this TensorRT has none."""
    if precision == "fp32":
        return None
    name = FLAGS[precision]
    if not hasattr(trt.BuilderFlag, name):  # TensorRT 11 removed weak typing (precision flags)
        raise ExportError(f"TensorRT {trt.__version__} has no {precision} builder flag (BuilderFlag.{name}); "
                          f"--precision {precision} needs TensorRT 10.x (fp32 engines build with this version)")
    return getattr(trt.BuilderFlag, name)


def build_engine(onnx_path: Path, spec: NetworkSpec, out_path: Path, precision: str = "fp32",
                 workspace_gib: float | None = None) -> Path:
    """Parse `onnx_path`, build with the spec's profile, write the plan atomically to `out_path`."""
    trt = tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    flag = precision_flag(trt, precision)
    if flag is not None:
        config.set_flag(flag)
        _pin_fp32(trt, network, config)
    profile = builder.create_optimization_profile()
    shapes = spec.trt_profile()
    for i in range(network.num_inputs):  # inputs the graph never reads were dropped by the parser
        name = network.get_input(i).name
        if name not in shapes:
            raise ExportError(f"{onnx_path} has input {name!r}, which the {spec.name} spec does not name")
        profile.set_shape(name, *shapes[name])
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    return atomic_write_bytes(out_path, bytes(plan))


def _pin_fp32(trt, network, config) -> None:
    """Layers whose names fall in FP32_SCOPES compute and output fp32 under fp16 / bf16 (float layers only:
    the int64 -> float Cast of t has no precision to pin)."""
    floats = tuple(getattr(trt, t) for t in ("float32", "float16", "bfloat16") if hasattr(trt, t))
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not any(scope in layer.name for scope in FP32_SCOPES):
            continue
        ins = [layer.get_input(j) for j in range(layer.num_inputs)]
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if layer.type == trt.LayerType.CAST or any(t is not None and t.dtype not in floats for t in ins + outs):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
