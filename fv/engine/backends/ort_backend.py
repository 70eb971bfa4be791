"""ONNX Runtime backend: CPU execution provider, CUDA EP where onnxruntime-gpu provides it, IO binding.

IO binding hands ONNX Runtime the torch tensors' memory directly (inputs read in place, outputs
written into torch tensors allocated here), so no numpy copies are made on either device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fv.engine.backends.base import BackendError, checked_batch
from fv.engine.iospec import NetworkSpec

ORT_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)"}
NP_TYPES = {"float32": np.float32, "int64": np.int64}
META_NETWORK = "fv.network"  # custom metadata key `fv export` writes into every ONNX file


def check_io(path: Path | str, spec: NetworkSpec, inputs: list[tuple[str, list, str]],
             outputs: list[tuple[str, list, str]], network: str | None = None) -> None:
    """BackendError unless a model's (name, shape, type) inputs / outputs are exactly the spec's.

    Shapes: dynamic axes may be any string / None / -1, fixed ones must be equal."""
    if network is not None and network != spec.name:
        raise BackendError(f"{path} holds the {network} network, not {spec.name}")
    for kind, got, want in (("inputs", inputs, spec.inputs), ("outputs", outputs, spec.outputs)):
        names = [g[0] for g in got]
        if names != [w.name for w in want]:
            raise BackendError(f"{path} is not a {spec.name} network: its {kind} are {names}, "
                               f"expected {[w.name for w in want]}")
        for (name, shape, dtype), w in zip(got, want):
            fixed_ok = len(shape) == len(w.shape) and all(
                isinstance(d, str) or (isinstance(g, int) and g == d) for g, d in zip(shape, w.shape))
            if not fixed_ok or dtype != ORT_TYPES[w.dtype]:
                raise BackendError(f"{path} is not a {spec.name} network: {name} is {dtype} {list(shape)}, "
                                   f"expected {ORT_TYPES[w.dtype]} {list(w.shape)}")


class OrtBackend:
    """backend(feeds) -> outputs through an onnxruntime.InferenceSession over one exported network."""

    def __init__(self, onnx_path: str | Path, spec: NetworkSpec, device: str | torch.device = "cpu",
                 threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the onnxruntime backend needs the onnxruntime package (pip install onnxruntime)")
        self.path = Path(onnx_path)
        self.spec = spec
        self.device = torch.device(device)
        self.max_batch: int | None = None
        if not self.path.is_file():
            raise BackendError(f"ONNX file {self.path} does not exist; run `fv export` to make it")
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError("onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu) "
                                   "; use device='cpu'")
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0}), "CPUExecutionProvider"]
        elif self.device.type == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise BackendError(f"the onnxruntime backend runs on cpu or cuda, not {self.device}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"{self.path} is not a loadable ONNX model: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        check_io(self.path, spec, [(a.name, list(a.shape), a.type) for a in self.session.get_inputs()],
                 [(a.name, list(a.shape), a.type) for a in self.session.get_outputs()], meta.get(META_NETWORK))
        self.providers = self.session.get_providers()

    def __repr__(self) -> str:
        return f"OrtBackend({self.spec.name}, {self.path.name}, {self.providers[0]})"

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = checked_batch(self.spec, feeds)
        dev_type = "cuda" if self.device.type == "cuda" else "cpu"
        dev_id = self.device.index or 0
        binding = self.session.io_binding()
        keep = []  # the bound tensors must stay alive until the run returns
        for s in self.spec.inputs:
            x = feeds[s.name].to(self.device).contiguous()
            keep.append(x)
            binding.bind_input(s.name, dev_type, dev_id, NP_TYPES[s.dtype], tuple(x.shape), x.data_ptr())
        outputs = {}
        for s in self.spec.outputs:
            y = torch.empty(s.concrete(batch), dtype=s.torch_dtype, device=self.device)
            binding.bind_output(s.name, dev_type, dev_id, NP_TYPES[s.dtype], tuple(y.shape), y.data_ptr())
            outputs[s.name] = y
        if dev_type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch kernels are ready
        self.session.run_with_iobinding(binding)
        return outputs
