"""The batched sampling engine: many videos at once on any backend (thesis 2.2.1 GAN, 3.2.3 sampling).

One engine = one checkpoint (one setting) + one backend per exported network (fv.engine.backends). Request
n = (neutral face x_ref [3, S, S] in [-1, 1], target emotion, seed). Requests run in chunks of whole videos;
the setting's family (fv.engine.families) renders a chunk from the networks, whatever runs them, so the
engine never asks which family or backend it holds.

Memory: a network call holds at most `max_frames_per_call` rows (and at most the backend's max_batch),
so activation memory is bounded by it; a chunk holds floor(max_frames_per_call / (T * rows_per_frame))
videos (rows_per_frame = 2 with guidance), so its doubled denoiser batch fits one call. A call that is
still too big (one video over the limit) is split into sub-batches; the result does not change.

Determinism: each request's pixel noise (x_T and every step's z) comes from its own CPU generator
(samplers.NoiseSource) and its motion noise from seed + MOTION_SEED_OFFSET (fv.engine.motion), so a
request's video depends only on its seed, never on the batch or chunk it shared (up to float rounding of
batched kernels).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from fv.engine.backends.artifacts import file_sha256, read_config
from fv.engine.checkpoint import CheckpointError, read_checkpoint
from fv.engine.config import RunConfig
from fv.engine.families import Renderer, Tick, family_of
from fv.engine.labels import N_FRAMES
from fv.engine.requests import EngineError, RenderRequest, check_batch, stack_requests

DEFAULT_MAX_FRAMES = 512   # 8 videos x 32 frames x 2 guidance halves per denoiser call


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise EngineError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N ({e})") from None


def to_uint8_video(x: torch.Tensor) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3]: round((clamp(x) + 1) * 127.5)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


class Network:
    """One backend as a keyword callable that splits any batch into calls of at most `limit` rows and
    concatenates the outputs (every input and output carries the batch on axis 0)."""

    def __init__(self, backend, limit: int):
        self.backend = backend
        self.spec = backend.spec
        cap = getattr(backend, "max_batch", None)
        self.limit = max(1, min(limit, cap) if cap else limit)
        self.calls = 0

    def __call__(self, **feeds: torch.Tensor) -> dict[str, torch.Tensor]:
        b = next(iter(feeds.values())).shape[0]
        parts = []
        for i in range(0, b, self.limit):
            parts.append(self.backend({k: v[i:i + self.limit] for k, v in feeds.items()}))
            self.calls += 1
        if len(parts) == 1:
            return parts[0]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class Engine:
    """Render N requests of one checkpoint on one backend kind (torch | onnxruntime | tensorrt).

    sampler / steps / eta / guidance / frame_noise / ref_strength override the checkpoint's sampling
    options (DiffusionConfig.sampling; a GAN setting has none, `options` is None). `backends` may pass
    prebuilt backends ({network name: backend}) instead of building them."""

    def __init__(self, checkpoint: str | Path, backend: str = "torch", device: str | torch.device = "cpu",
                 artifacts_dir: str | Path | None = None, sampler: str | None = None,
                 steps: int | str | None = None, guidance: float | None = None, eta: float | None = None,
                 frame_noise: str | None = None, ref_strength: float | None = None,
                 max_frames_per_call: int = DEFAULT_MAX_FRAMES, precision: str = "fp32",
                 backends: dict | None = None, **torch_options):
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise CheckpointError(f"checkpoint {self.checkpoint} does not exist")
        config = read_config(self.checkpoint)                              # metadata only, no weights read
        overrides = dict(sampler=sampler, steps=steps, eta=eta, guidance=guidance, frame_noise=frame_noise,
                         ref_strength=ref_strength)
        options = family_of(config).sample_options(config, **overrides)
        if backends is None:
            from fv.engine.backends import make_backends
            backends = make_backends(backend, self.checkpoint, artifacts_dir, resolve_device(device),
                                     precision, **torch_options)
        self._setup(config, options, backends, backend, precision, max_frames_per_call,
                    lambda name: read_checkpoint(self.checkpoint).section(f"model.{name}"))

    @classmethod
    def from_model(cls, config: RunConfig, model: torch.nn.ModuleDict, device: str | torch.device = "cpu",
                   max_frames_per_call: int = DEFAULT_MAX_FRAMES, **overrides) -> Engine:
        """An engine over modules in memory (the trainer's preview of its EMA weights), torch backend."""
        from fv.engine.backends.torch_backend import TorchBackend
        from fv.engine.families import network_modules, network_specs

        family = family_of(config)
        specs, mods = network_specs(config), network_modules(config, model)
        backends = {n: TorchBackend(mods[n], specs[n], device) for n in specs}
        self = cls.__new__(cls)
        self.checkpoint = None
        self._setup(config, family.sample_options(config, **overrides), backends, "torch", "fp32",
                    max_frames_per_call, lambda name: model[name].state_dict())
        return self

    def _setup(self, config: RunConfig, options, backends: dict, kind: str, precision: str,
               max_frames_per_call: int, state) -> None:
        if int(max_frames_per_call) != max_frames_per_call or max_frames_per_call < 1:
            raise EngineError(f"max_frames_per_call must be a positive integer, got {max_frames_per_call!r}")
        self.config, self.setting, self.options = config, config.setting, options
        self.backend_kind, self.precision = kind, precision
        self.max_frames_per_call = int(max_frames_per_call)
        self.nets = {name: Network(b, self.max_frames_per_call) for name, b in backends.items()}
        self.device = next(iter(backends.values())).device
        self.n_frames = N_FRAMES
        self.renderer: Renderer = family_of(config).renderer(config, self.nets, options, state, self.device)
        self.image_size = self.renderer.image_size
        self._sha: str | None = None

    def __repr__(self) -> str:
        opts = "" if self.options is None else (f", {self.options.sampler} {self.options.steps} steps, "
                                                f"g={self.options.guidance}")
        return f"Engine({self.setting}, {self.backend_kind} on {self.device}{opts})"

    @property
    def checkpoint_sha256(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.checkpoint)
        return self._sha

    @property
    def halves(self) -> int:
        """Rows per frame in a network call: 2 with classifier-free guidance, else 1."""
        return self.renderer.rows_per_frame

    @property
    def videos_per_chunk(self) -> int:
        return max(1, self.max_frames_per_call // (self.n_frames * self.halves))

    @property
    def steps_per_chunk(self) -> int:
        """Network steps a chunk runs (the steps that actually run; 1 for the GAN's single pass)."""
        return self.renderer.steps

    # ------------------------------------------------------------------ public API
    def sample(self, faces: torch.Tensor, emotions, seeds, progress: bool = False) -> torch.Tensor:
        """faces float [N, 3, S, S] in [-1, 1], N emotions, N seeds -> videos float [N, 32, 3, S, S] (CPU)."""
        out = [v for _, v in self._chunks(faces, emotions, seeds, progress)]
        return torch.cat(out)

    def render(self, faces: torch.Tensor, emotions, seeds, progress: bool = False) -> np.ndarray:
        """As `sample`, as uint8 videos [N, 32, S, S, 3]."""
        return to_uint8_video(self.sample(faces, emotions, seeds, progress))

    def render_requests(self, requests: list[RenderRequest], progress: bool = False) -> np.ndarray:
        """RenderRequest list (uint8 crops or model-range faces) -> uint8 [N, 32, S, S, 3]."""
        return self.render(*stack_requests(requests, self.image_size), progress=progress)

    def render_chunks(self, faces: torch.Tensor, emotions, seeds,
                      progress: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first request index, uint8 videos [n, 32, S, S, 3]) chunk by chunk, so a caller can
        write results as they come (fv render-set)."""
        for start, v in self._chunks(faces, emotions, seeds, progress):
            yield start, to_uint8_video(v)

    # ------------------------------------------------------------------ flows (a checkpoint that generates them)
    @property
    def generates_flows(self) -> bool:
        """Whether the checkpoint samples motion as flows it can hand out before drawing frames (LFDM)."""
        return callable(getattr(self.renderer, "flows", None))

    def flows(self, faces: torch.Tensor, emotions, seeds) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """faces float [N, 3, S, S] in [-1, 1] (as `sample`), N emotions, N seeds -> (latent [N, C, h, w], flow
        [N, T, 2, h, w] in pixels of the S-pixel frame, visibility [N, T, 1, h, w]), on the engine's device: the
        sampled flows, before any decoding (decode_flows draws their frames; together they are `sample`)."""
        if not self.generates_flows:
            raise EngineError(f"{self.setting} generates frames, not flows")
        faces, emotions, seeds = check_batch(faces, emotions, seeds, self.image_size)
        k, parts = self.videos_per_chunk, []
        with torch.no_grad():
            for i in range(0, len(faces), k):
                x = faces[i:i + k].contiguous().to(self.device)   # one memory layout: the same kernels, the same flows
                parts.append(self.renderer.flows(x, emotions[i:i + k], seeds[i:i + k]))
        return tuple(torch.cat(p) for p in zip(*parts))

    def decode_flows(self, latent: torch.Tensor, flow: torch.Tensor, visibility: torch.Tensor) -> np.ndarray:
        """uint8 videos [N, T, S, S, 3]: the frames the checkpoint draws from flows (those of `flows`)."""
        if not self.generates_flows:
            raise EngineError(f"{self.setting} generates frames, not flows")
        with torch.no_grad():
            return to_uint8_video(self.renderer.decode(latent, flow, visibility))

    # ------------------------------------------------------------------ chunk loop
    def _chunks(self, faces, emotions, seeds, progress: bool) -> Iterator[tuple[int, torch.Tensor]]:
        faces, emotions, seeds = check_batch(faces, emotions, seeds, self.image_size)
        n, k = len(faces), self.videos_per_chunk
        with _Progress(progress, -(-n // k) * self.steps_per_chunk, f"{self.setting} x{n}") as tick:
            for i in range(0, n, k):
                with torch.no_grad():
                    v = self.renderer(faces[i:i + k].to(self.device), emotions[i:i + k], seeds[i:i + k], tick)
                yield i, v.float().cpu()



class _Progress:
    """A rich progress bar over denoiser steps (or GAN chunks); a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, description: str):
        self.enabled, self.total, self.description = enabled, total, description
        self._bar = None

    def __enter__(self) -> Tick:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress
        self._bar = Progress(console=Console(stderr=True), transient=False)
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = ["DEFAULT_MAX_FRAMES", "Engine", "EngineError", "Network", "RenderRequest", "file_sha256",
           "resolve_device", "to_uint8_video"]
