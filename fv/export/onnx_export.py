"""One network to one ONNX file, with the names, order and dynamic batch axis its NetworkSpec gives.

Exporter: torch.onnx.export(dynamo=False) (the TorchScript tracer), opset 17. It works for every fv
network with torch 2.14 and keeps the input names exactly; the tracer's deprecation notice and its
"converting a tensor to a Python boolean" warnings (GroupNorm's training-mode batch check) are
silenced, and the parity check at two batch sizes (fv.export.parity) catches anything the trace baked in.
The tracer drops inputs a graph never reads (the category of a baseline GRU or an onlyEM generator);
they are put back as graph inputs so every file takes exactly its spec's inputs.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from fv.engine.backends.artifacts import OPSET
from fv.engine.backends.ort_backend import META_NETWORK
from fv.engine.iospec import NetworkSpec
from fv.export.errors import ExportError

ONNX_TYPES = {"float32": onnx.TensorProto.FLOAT, "int64": onnx.TensorProto.INT64}
EXPORTER = f"torch.onnx.export(dynamo=False, opset_version={OPSET})"


def export_onnx(module: nn.Module, spec: NetworkSpec, path: str | Path, opset: int = OPSET,
                trace_batch: int = 2) -> Path:
    """Export `module` (forward(*inputs in spec order)) to `path`; returns the path."""
    path = Path(path)
    module = module.eval()
    args = tuple(spec.sample_inputs(trace_batch, torch.Generator().manual_seed(0)).values())
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(module, args, buf, input_names=spec.input_names, output_names=spec.output_names,
                              dynamic_axes=spec.dynamic_axes(), opset_version=opset, do_constant_folding=True,
                              dynamo=False)
    except Exception as e:  # noqa: BLE001 - the exporter raises many types; report the first line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"exporting {spec.name} to ONNX failed: {first}") from e
    model = onnx.load_from_string(buf.getvalue())
    restore_inputs(model, spec)
    declare_outputs(model, spec)
    meta = {META_NETWORK: spec.name, "fv.spec": json.dumps(spec.to_dict(), sort_keys=True)}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "fv"
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the ONNX graph of {spec.name} is invalid: {str(e).splitlines()[0]}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def restore_inputs(model: onnx.ModelProto, spec: NetworkSpec) -> None:
    """Graph inputs = the spec's inputs in spec order; unread ones are added back as (unused) inputs."""
    graph = model.graph
    have = {i.name: i for i in graph.input}
    extra = [n for n in have if n not in spec.input_names]
    if extra:
        raise ExportError(f"the ONNX graph of {spec.name} has inputs {extra} that its spec does not name")
    ordered = []
    for s in spec.inputs:
        vi = have.get(s.name)
        if vi is None:
            vi = onnx.helper.make_tensor_value_info(s.name, ONNX_TYPES[s.dtype], list(s.shape))
        ordered.append(vi)
    del graph.input[:]
    graph.input.extend(ordered)


def declare_outputs(model: onnx.ModelProto, spec: NetworkSpec) -> None:
    """Graph outputs take the spec's shapes: the tracer writes symbolic sizes where an output's size went through
    a resize by a scale (LFDM's decoder: nearest upsampling), though the spec fixes them."""
    for out, s in zip(model.graph.output, spec.outputs):
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for d in s.shape:
            dim = dims.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d
