"""PyTorch backend: eager, optional torch.compile, optional CUDA graphs, fp32 / bf16 / fp16 (autocast).

Reduced precision is autocast over fp32 weights: matmuls and convolutions run in bf16/fp16, norms and
softmax stay fp32, so layers that compute in fp32 on purpose (the sinusoidal timestep embedding) keep
working. A CUDA graph is captured once per batch size into static input/output buffers; a call copies
the feeds in, replays, and returns copies of the outputs (valid after the next call).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from fv.engine.backends.base import BackendError, checked_batch
from fv.engine.iospec import NetworkSpec

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_GRAPHS = 8  # CUDA graphs kept (one per batch size, least recently used dropped first)


def precision_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in PRECISIONS.values():
            raise BackendError(f"precision {dtype} is not one of float32, bfloat16, float16")
        return dtype
    if dtype not in PRECISIONS:
        raise BackendError(f"unknown precision {dtype!r}; choose one of: {', '.join(PRECISIONS)}")
    return PRECISIONS[dtype]


class TorchBackend:
    """backend(feeds) -> outputs for one network module (forward(*inputs in spec order)).

    dtype: fp32 | bf16 | fp16 (or the torch dtype); compile: False | True | a torch.compile backend name;
    cuda_graph: capture and replay one CUDA graph per batch size (CUDA only)."""

    def __init__(self, module: nn.Module, spec: NetworkSpec, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype = torch.float32, compile: bool | str = False, cuda_graph: bool = False):
        self.spec = spec
        self.device = torch.device(device)
        self.dtype = precision_dtype(dtype)
        self.max_batch: int | None = None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {self.device} asked for but CUDA is not available here")
        if self.dtype == torch.float16 and self.device.type != "cuda":
            raise BackendError("fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        if cuda_graph and self.device.type != "cuda":
            raise BackendError("CUDA graphs need a CUDA device (device='cuda')")
        self.module = module.to(self.device).eval()
        self.cuda_graph = cuda_graph
        # compile: True = torch.compile's default backend (inductor); a string names another backend
        backend = compile if isinstance(compile, str) else "inductor"
        self._fn = torch.compile(self.module, dynamic=True, backend=backend) if compile else self.module
        self._graphs: OrderedDict[int, tuple[torch.cuda.CUDAGraph, dict, dict]] = OrderedDict()
        self._pool = None

    def __repr__(self) -> str:
        return f"TorchBackend({self.spec.name}, {self.device}, {self.dtype}, cuda_graph={self.cuda_graph})"

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = checked_batch(self.spec, feeds)
        with torch.no_grad():
            if self.cuda_graph:
                return self._replay(batch, feeds)
            args = [feeds[n].to(self.device, non_blocking=True) for n in self.spec.input_names]
            return self._run(args)

    def _run(self, args: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        low = self.dtype != torch.float32
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=low):
            out = self._fn(*args)
        out = (out,) if torch.is_tensor(out) else tuple(out)
        return {n: o.float() for n, o in zip(self.spec.output_names, out)}

    # ------------------------------------------------------------------ CUDA graphs
    def _replay(self, batch: int, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if batch not in self._graphs:
            self._graphs[batch] = self._capture(batch)
            while len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(batch)
        graph, static_in, static_out = self._graphs[batch]
        for n, buf in static_in.items():
            buf.copy_(feeds[n], non_blocking=True)
        graph.replay()
        return {n: o.clone() for n, o in static_out.items()}

    def _capture(self, batch: int):
        # static inputs hold valid values (one-hot, t in range) so the warm-up runs are meaningful
        static_in = {n: v.to(self.device) for n, v in self.spec.sample_inputs(batch).items()}
        args = [static_in[n] for n in self.spec.input_names]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuDNN autotuning and lazy allocations happen outside capture
                self._run(args)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self._run(args)
        return graph, static_in, static_out
