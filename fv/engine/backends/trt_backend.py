"""TensorRT backend: one deserialised engine, buffers preallocated at the profile's max batch, optional
CUDA graph per batch size (the pattern of TensorRT demo_diffusion's Engine.infer, keyed by shape).

Every I/O tensor gets ONE device buffer of its max-batch shape; a call with batch b uses the leading b
rows (a contiguous prefix, so the addresses bound to the execution context never change), sets the input
shapes, enqueues on the current torch stream and returns copies of the output prefixes.
Needs the tensorrt Python package (TensorRT 10+ API: named I/O tensors, int64 inputs, execute_async_v3)
and a CUDA GPU; without them every entry point raises BackendError saying which is missing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fv.engine.backends.base import BackendError, checked_batch
from fv.engine.backends.ort_backend import check_io
from fv.engine.iospec import NetworkSpec


def require_tensorrt():
    """The tensorrt module, or BackendError naming what is missing (the package, CUDA, or both)."""
    missing = []
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
        missing.append("the tensorrt Python package (pip install tensorrt, NVIDIA's wheels)")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU visible to PyTorch")
    if missing:
        raise BackendError(f"TensorRT needs {' and '.join(missing)}; use the torch or onnxruntime backend here")
    return trt


def trt_versions() -> dict[str, str]:
    """What a TensorRT engine depends on besides its ONNX file: TensorRT's version and the GPU's architecture."""
    trt = require_tensorrt()
    major, minor = torch.cuda.get_device_capability()
    return {"tensorrt": trt.__version__, "gpu": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}"}


_TRT_TYPES = {"FLOAT": "tensor(float)", "INT64": "tensor(int64)", "INT32": "tensor(int32)", "HALF": "tensor(float16)"}


class TrtBackend:
    """backend(feeds) -> outputs through a TensorRT engine built by `fv export --trt` for this spec."""

    def __init__(self, engine_path: str | Path, spec: NetworkSpec, cuda_graph: bool = True):
        trt = require_tensorrt()
        self.path = Path(engine_path)
        self.spec = spec
        self.device = torch.device("cuda", torch.cuda.current_device())
        if not self.path.is_file():
            raise BackendError(f"TensorRT engine {self.path} does not exist; run `fv export --trt` to build it")
        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{self.path} is not a TensorRT engine for this TensorRT version and GPU; "
                               f"rebuild it with `fv export --trt`")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_in = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        # TensorRT drops inputs the graph never reads (e.g. the category of an onlyEM generator): the engine's
        # inputs are the spec's inputs minus those, in the same order.
        self.bound_inputs = [n for n in spec.input_names if n in names]

        def io(n: str) -> tuple[str, list, str]:
            shape = ["B" if d == -1 else int(d) for d in self.engine.get_tensor_shape(n)]
            return n, shape, _TRT_TYPES.get(self.engine.get_tensor_dtype(n).name, "?")

        sub = NetworkSpec(spec.name, tuple(s for s in spec.inputs if s.name in names), spec.outputs, spec.batch_range)
        # compare in spec order (the engine's own I/O order is TensorRT's choice); unknown names still fail
        order = {n: i for i, n in enumerate(spec.input_names + spec.output_names)}
        ins = sorted((n for n in names if is_in[n]), key=lambda n: order.get(n, len(order)))
        outs = sorted((n for n in names if not is_in[n]), key=lambda n: order.get(n, len(order)))
        check_io(self.path, sub, [io(n) for n in ins], [io(n) for n in outs])
        self.max_batch = min(int(self.engine.get_tensor_profile_shape(n, 0)[2][0]) for n in self.bound_inputs)
        self.min_batch = max(int(self.engine.get_tensor_profile_shape(n, 0)[0][0]) for n in self.bound_inputs)
        self.context = self.engine.create_execution_context()
        # preallocated buffers at the max batch; addresses bound once
        self.buffers = {s.name: torch.empty(s.concrete(self.max_batch), dtype=s.torch_dtype, device=self.device)
                        for s in (*sub.inputs, *spec.outputs)}
        for n, buf in self.buffers.items():
            self.context.set_tensor_address(n, buf.data_ptr())
        self.cuda_graph = cuda_graph
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._shape_batch: int | None = None

    def __repr__(self) -> str:
        return f"TrtBackend({self.spec.name}, {self.path.name}, batch {self.min_batch}..{self.max_batch})"

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = checked_batch(self.spec, feeds)
        if not self.min_batch <= batch <= self.max_batch:
            raise BackendError(f"{self.spec.name}: batch {batch} is outside the engine's profile "
                               f"[{self.min_batch}, {self.max_batch}]; split the batch or rebuild the engine")
        for n in self.bound_inputs:
            self.buffers[n][:batch].copy_(feeds[n], non_blocking=True)
        self._set_shapes(batch)
        stream = torch.cuda.current_stream(self.device)
        if self.cuda_graph:
            graph = self._graphs.get(batch)
            if graph is None:
                graph = self._graphs[batch] = self._capture(batch)
            graph.replay()
        elif not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError(f"TensorRT failed to run {self.path.name} at batch {batch}")
        return {n: self.buffers[n][:batch].clone() for n in self.spec.output_names}

    def _set_shapes(self, batch: int) -> None:
        if self._shape_batch == batch:
            return
        for n in self.bound_inputs:
            s = next(x for x in self.spec.inputs if x.name == n)
            self.context.set_input_shape(n, s.concrete(batch))
        self._shape_batch = batch

    def _capture(self, batch: int) -> torch.cuda.CUDAGraph:
        # one eager run first (TensorRT allocates lazily on the first enqueue for a shape), then capture
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            if not self.context.execute_async_v3(side.cuda_stream):
                raise BackendError(f"TensorRT failed to run {self.path.name} at batch {batch}")
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream)
        return graph
