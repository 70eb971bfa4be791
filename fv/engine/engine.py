"""The batched sampling engine: many videos at once on any backend (thesis 2.2.1 GAN, 3.2.3 sampling).

One engine = one checkpoint (one setting) + one backend per exported network (fv.engine.backends).
Request n = (neutral face x_ref [3, S, S] in [-1, 1], target emotion, seed). Requests run in chunks of
whole videos; per chunk of n videos (T = 32 frames each):

  GAN (baseline, onlyEM)   codes  = motion(e_n, h0_n, z_a)                       [n, T, 10], one call
                           frames = generator(x_ref per frame, code_t, z_a)      [n*T, 3, S, S]
  diffusion                ref_l  = face_encoder(x_ref)                          once per request
                           codes  = motion(e_n, h0_n, z_a) or a retrieved trajectory (both_retrievedMcs)
                           x_T -> x_0 by video_sampler.sample_frames: every step is ONE denoiser batch of
                           2 n T frames, guidance's conditional and unconditional halves together

Memory: a network call holds at most `max_frames_per_call` rows (and at most the backend's max_batch),
so activation memory is bounded by it; a chunk holds floor(max_frames_per_call / (T * halves)) videos
(halves = 2 with guidance), so its doubled denoiser batch fits one call. A call that is still too big
(one video over the limit) is split into sub-batches; the result does not change.

Determinism: each request's pixel noise (x_T and every step's z) comes from its own CPU generator
(samplers.NoiseSource) and its motion noise from seed + MOTION_SEED_OFFSET, so a request's video
depends only on its seed, never on the batch or chunk it shared (up to float rounding of batched kernels).
The sampling loop never asks which backend it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from fv.engine.backends.artifacts import file_sha256, read_config
from fv.engine.checkpoint import CheckpointError, read_checkpoint
from fv.engine.config import GANConfig, RunConfig
from fv.engine.diffusion import DiffusionSchedule, TimestepSpecError, timestep_pairs
from fv.engine.iospec import IMAGE_SIZE
from fv.engine.labels import N_FRAMES, one_hot
from fv.engine.models.mixer import motion_windows
from fv.engine.requests import EngineError, RenderRequest, check_batch, stack_requests
from fv.engine.video_sampler import (FRAME_NOISE, SampleOptions, gan_frames, motion_noise, retrieved_codes,
                                     sample_frames)

DEFAULT_MAX_FRAMES = 512   # 8 videos x 32 frames x 2 guidance halves per denoiser call
SAMPLERS = ("ddpm", "ddim")

Tick = Callable[[], None]


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

    sampler / steps / eta / guidance default to the checkpoint's DiffusionConfig (GAN settings ignore
    them). `backends` may pass prebuilt backends ({network name: backend}) instead of building them."""

    def __init__(self, checkpoint: str | Path, backend: str = "torch", device: str | torch.device = "cpu",
                 artifacts_dir: str | Path | None = None, sampler: str | None = None,
                 steps: int | str | None = None, guidance: float | None = None, eta: float | None = None,
                 frame_noise: str = "video", ref_strength: float | None = None,
                 max_frames_per_call: int = DEFAULT_MAX_FRAMES, precision: str = "fp32",
                 backends: dict | None = None, **torch_options):
        if int(max_frames_per_call) != max_frames_per_call or max_frames_per_call < 1:
            raise EngineError(f"max_frames_per_call must be a positive integer, got {max_frames_per_call!r}")
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise CheckpointError(f"checkpoint {self.checkpoint} does not exist")
        self.config: RunConfig = read_config(self.checkpoint)             # metadata only, no weights read
        self.setting = self.config.setting
        self.backend_kind, self.precision = backend, precision
        self.max_frames_per_call = int(max_frames_per_call)
        m = self.config.model
        self.is_gan = isinstance(m, GANConfig)
        self.options = None if self.is_gan else _sample_options(m, sampler, steps, eta, guidance, frame_noise,
                                                                     ref_strength)
        if backends is None:
            from fv.engine.backends import make_backends
            backends = make_backends(backend, self.checkpoint, artifacts_dir, resolve_device(device),
                                     precision, **torch_options)
        self.nets = {name: Network(b, self.max_frames_per_call) for name, b in backends.items()}
        self.device = next(iter(backends.values())).device
        self.n_frames = N_FRAMES
        if self.is_gan:
            self._need("motion", "generator")
            self.image_size = IMAGE_SIZE
            self.motion_dim = m.dim_z_motion
            self._chunk = self._gan_chunk
        else:
            self._need("face_encoder", "denoiser")
            self.image_size = m.unet.image_size
            self.window = m.unet.window
            self.schedule = DiffusionSchedule(m.num_steps, m.beta_start, m.beta_end, device=self.device)
            if m.motion_source == "gru":
                self._need("motion")
                self.motion_dim = m.motion.dim_z_motion
                self._codes = self._gru_codes
            else:  # both_retrievedMcs: the bank of real trajectories stays in torch (thesis 3.4.4)
                from fv.engine.diffusion_build import MotionBank
                self.bank = MotionBank(m.bank_size, N_FRAMES, m.unet.motion_dim)
                self.bank.load_state_dict(read_checkpoint(self.checkpoint).section("model.bank"))
                self._codes = self._bank_codes
            self._chunk = self._diffusion_chunk
        self._sha: str | None = None

    def __repr__(self) -> str:
        opts = "" if self.options is None else (f", {self.options.sampler} {self.options.steps} steps, "
                                                f"g={self.options.guidance}")
        return f"Engine({self.setting}, {self.backend_kind} on {self.device}{opts})"

    def _need(self, *names: str) -> None:
        missing = [n for n in names if n not in self.nets]
        if missing:
            raise EngineError(f"the {self.setting} engine needs backends for {missing}, got {sorted(self.nets)}")

    @property
    def checkpoint_sha256(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.checkpoint)
        return self._sha

    @property
    def halves(self) -> int:
        """Rows per frame in a denoiser call: 2 with classifier-free guidance, else 1."""
        return 1 if self.options is None or self.options.guidance == 1.0 else 2

    @property
    def videos_per_chunk(self) -> int:
        return max(1, self.max_frames_per_call // (self.n_frames * self.halves))

    @property
    def steps_per_chunk(self) -> int:
        """Denoiser steps a chunk runs (1 for the GAN's single pass)."""
        if self.options is None:
            return 1
        return len(timestep_pairs(self.schedule.num_steps, self.options.steps))

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

    # ------------------------------------------------------------------ chunk loop
    def _chunks(self, faces, emotions, seeds, progress: bool) -> Iterator[tuple[int, torch.Tensor]]:
        faces, emotions, seeds = check_batch(faces, emotions, seeds, self.image_size)
        n, k = len(faces), self.videos_per_chunk
        with _Progress(progress, -(-n // k) * self.steps_per_chunk, f"{self.setting} x{n}") as tick:
            for i in range(0, n, k):
                with torch.no_grad():
                    v = self._chunk(faces[i:i + k].to(self.device), emotions[i:i + k], seeds[i:i + k], tick)
                yield i, v.float().cpu()

    def _category(self, emotions: torch.Tensor) -> torch.Tensor:
        return one_hot(emotions).to(self.device)                           # z_a [n, 7]

    def _gru_codes(self, emotions: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        noise, h0 = motion_noise(seeds, self.motion_dim, self.n_frames, self.device)  # [n,T,D], [n,D]
        return self.nets["motion"](noise=noise, h0=h0, category=self._category(emotions))["codes"]

    def _bank_codes(self, emotions: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        return retrieved_codes(self.bank, emotions, seeds, self.device)  # [n, T, D]

    def _gan_chunk(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int], tick: Tick) -> torch.Tensor:
        codes = self._gru_codes(emotions, seeds)                           # [n, T, 10]
        gen = self.nets["generator"]

        def generate(x, motion, category):                                 # [n*T, ...] frames
            return gen(x_ref=x, motion=motion, category=category)["frame"]
        video = gan_frames(generate, x_ref, codes, self._category(emotions))
        tick()
        return video                                                       # [n, T, 3, S, S]

    def _diffusion_chunk(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int],
                         tick: Tick) -> torch.Tensor:
        enc, den = self.nets["face_encoder"], self.nets["denoiser"]
        refs = enc(x_ref=x_ref)                                            # once per request
        ref_feats = tuple(refs[name] for name in enc.spec.output_names)    # ref_l [n, C_l, S/2^l, S/2^l]
        ref_names = den.spec.input_names[4:]                               # x_t, t, motion, emotion, ref_*
        windows = motion_windows(self._codes(emotions, seeds), self.window)  # [n, T, W, D]

        def denoise(x_t, t, motion, emotion, feats):                       # one call per sampling step
            eps = den(x_t=x_t, t=t, motion=motion, emotion=emotion, **dict(zip(ref_names, feats)))["eps"]
            tick()
            return eps
        return sample_frames(denoise, self.schedule, ref_feats, windows, emotions, seeds, self.options,
                             (3, self.image_size, self.image_size), x_ref=x_ref, target=self.config.model.target)


def _sample_options(m, sampler, steps, eta, guidance, frame_noise="video", ref_strength=None) -> SampleOptions:
    opts = SampleOptions(sampler=m.sampler if sampler is None else sampler,
                         steps=m.sample_steps if steps is None else steps,
                         eta=m.eta if eta is None else float(eta),
                         guidance=m.guidance if guidance is None else float(guidance), frame_noise=frame_noise,
                         ref_strength=m.ref_strength if ref_strength is None else float(ref_strength))
    if not 0.0 < opts.ref_strength <= 1.0:
        raise EngineError(f"ref_strength must be in (0, 1], got {opts.ref_strength}")
    if opts.frame_noise not in FRAME_NOISE:
        raise EngineError(f"unknown frame noise {opts.frame_noise!r}; choose one of: {', '.join(FRAME_NOISE)}")
    if opts.sampler not in SAMPLERS:
        raise EngineError(f"unknown sampler {opts.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if opts.eta < 0:
        raise EngineError(f"eta must be >= 0, got {opts.eta}")
    if not np.isfinite(opts.guidance):
        raise EngineError(f"guidance must be a finite number, got {opts.guidance}")
    try:
        timestep_pairs(m.num_steps, opts.steps)
    except TimestepSpecError as e:
        raise EngineError(f"bad --steps: {e}") from None
    return opts


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
