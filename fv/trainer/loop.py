"""The one training loop (STYLE practice 7): data, AMP, EMA, checkpoints, previews, logging.

Per-family steps (fv.trainer.steps: GANStep, DiffusionStep) own their losses and optimisers and return loss
dicts; this loop owns everything around them. Preview strips are rendered by the sampling engine
itself, on the EMA weights with the config's sampling options (fv.engine.engine.Engine.from_model), so they
show what `fv render` would. A run lives in one folder:
    RUN/step_000250.safetensors ...   the newest `keep_checkpoints` checkpoints
    RUN/last.safetensors              the newest, what --resume and `fv render` pick up
    RUN/metrics.jsonl                 one JSON line of losses every `log_every` steps, with the seconds trained
    RUN/samples/step_000250.png       preview strips (rows = identity x emotion, 10 frames across)
Every file is published atomically (fv.engine.atomic). Resuming first tidies what a killed run left
(fv.trainer.run_folder): metrics past the checkpoint, temporaries, an unreadable last.safetensors.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fv.data.layout import load_split
from fv.engine.atomic import atomic_path, atomic_write_text
from fv.engine.engine import Engine
from fv.engine.families import build_model
from fv.engine.checkpoint import (LAST, expect_setting, load_model_state, load_optimizer, optimizer_tensors,
                                  save_checkpoint, state_tensors)
from fv.engine.config import ConfigError, RunConfig, data_synth_version
from fv.engine.labels import EMOTIONS
from fv.trainer.batches import EpochBatches, step_generator
from fv.trainer import distributed
from fv.trainer.ema import EMA
from fv.trainer.preview import save_png, video_grid
from fv.trainer.run_folder import METRICS, remove_stale_temps, resume_checkpoint, trim_metrics
from fv.trainer.steps import step_class

SCHEDULE = ("sample_every", "ckpt_every", "log_every", "keep_checkpoints")  # may change when resuming
TRAJECTORY = ("lr", "batch_size", "seed")   # a resumed run refuses other values of these, unless overridden


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    def __init__(self, config: RunConfig, data_root: str | Path, run_dir: str | Path,
                 device: str = "auto", resume: bool = True, progress: bool = True,
                 log: Callable[[str], None] = print, schedule: dict | None = None, override: bool = False):
        self.run_dir = Path(run_dir)
        self.dist = distributed.from_env()               # torchrun: one process per GPU, DDP
        self.device = distributed.setup(self.dist, pick_device(device))
        self.log = log if self.dist.main else (lambda msg: None)
        log = self.log
        self.progress = progress and self.dist.main
        self.data = load_split(data_root, "train")
        self.preview_data = _try_split(data_root, "test") or self.data
        self.start, self.overridden = 0, {}
        ckpt = resume_checkpoint(self.run_dir, log) if resume else None
        if ckpt is not None:
            expect_setting(ckpt, config.setting)
            # the saved config wins (architecture, seed, ...); only the step budget may be extended
            train = _with_steps(ckpt.config.train, config.train.steps)
            # what only schedules output (previews, checkpoints, logs) may change; the trajectory only when asked
            self.overridden = _changed(self.run_dir, train, schedule or {}, override)
            train = dataclasses.replace(train, **{k: v for k, v in (schedule or {}).items()
                                                  if k in SCHEDULE or k in self.overridden})
            config = ckpt.config.replace(train=train)
            self.start = ckpt.step
        # seconds trained before this process; None: a checkpoint older than the record, its metrics tell
        self.elapsed = ckpt.meta.get("elapsed") if ckpt is not None else 0.0
        self.t0 = time.time() - (self.elapsed or 0.0)
        self.Step = step_class(config)
        if ckpt is None:
            config = self.Step.adapt_config(config, self.data).replace(
                data=str(data_root), synth_version=data_synth_version(str(data_root)))
        self.config = config
        if config.train.batch_size % self.dist.world:
            raise ValueError(f"batch size {config.train.batch_size} (global) does not divide by the "
                             f"{self.dist.world} processes")
        torch.manual_seed(config.train.seed)  # the initial weights are a function of the seed
        self.model = build_model(config).to(self.device)
        use_amp = config.train.amp and self.device.type == "cuda"
        self.amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
        self.step = self.Step(config, self.model, self.device, self.amp, self.dist)
        self.image_size = getattr(self.step, "image_size", 64)   # the clips it trains on (LFDM's paper preset: 128)
        self.ema = EMA(self.step.trainable, config.train.ema_decay, config.train.ema_warmup)
        if ckpt is None and hasattr(self.step, "initialize"):
            self.step.initialize(self.data, log)      # e.g. the frozen GRU, the motion-code bank
        if ckpt is not None:
            load_model_state(self.model, ckpt)
            self.ema.load(ckpt.section("ema"))
            for name, opt in self.step.optimizers.items():
                load_optimizer(opt, ckpt, name)
            if hasattr(self.step, "load_extra"):
                self.step.load_extra(ckpt)
            log(f"resuming {config.setting} from {ckpt.path} at step {self.start}")
        self.batches = EpochBatches(len(self.data), config.train.batch_size, config.train.seed)
        self.emotions = torch.from_numpy(self.data.emotions)
        self.subjects = torch.from_numpy(self.data.subject_ids)

    # ---- pieces -------------------------------------------------------------------------------
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = self.dist.shard(self.batches.indices(step))   # this process' part of the global batch
        out = {"video": self.data.videos(idx, size=self.image_size).to(self.device),   # [B, T, 3, S, S]
               "emotion": self.emotions[idx].to(self.device),               # [B]
               "subject": self.subjects[idx].to(self.device),               # [B]
               "index": torch.tensor(idx, device=self.device)}              # [B] rows of the split
        if self.data.aus is not None:                                       # [B, T, K] action units (synthetic)
            out["aus"] = torch.from_numpy(self.data.aus[idx]).to(self.device)
        if getattr(self.step, "motion_supervised", False) and self.data.flow64 is not None:
            out["flow"] = torch.from_numpy(np.asarray(self.data.flow64[idx])).to(self.device)   # [B, T, 64, 64, 2]
            out["occ"] = torch.from_numpy(np.asarray(self.data.occ64[idx])).to(self.device)     # [B, T, 64, 64]
        return out

    def save(self, step: int) -> Path:
        tensors = state_tensors("model", self.model.state_dict())
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous().clone() for k, v in self.ema.shadow.items()})
        groups = {}
        for name, opt in self.step.optimizers.items():
            t, g = optimizer_tensors(name, opt)
            tensors.update(t)
            groups[name] = g
        tensors.update({f"extra.{k}": v for k, v in self.step.extra_tensors().items()})
        path = save_checkpoint(self.run_dir / f"step_{step:06d}.safetensors", self.config, step, tensors, groups,
                               meta={"elapsed": round(time.time() - self.t0, 2)})
        with atomic_path(self.run_dir / LAST) as tmp:
            shutil.copyfile(path, tmp)
        olds = sorted(self.run_dir.glob("step_*.safetensors"))[:-self.config.train.keep_checkpoints]
        for p in olds:
            p.unlink(missing_ok=True)
        return path

    def sampling_model(self) -> torch.nn.ModuleDict:
        m = copy.deepcopy(self.model).eval()
        self.ema.copy_to(m)
        return m

    def preview(self, step: int, n_ids: int = 2) -> Path:
        n = min(n_ids, len(self.preview_data))
        ids = [int(i * (len(self.preview_data) - 1) / max(1, n - 1)) for i in range(n)]
        refs = self.preview_data.videos(ids, size=self.image_size)[:, 0]  # [n, 3, S, S]
        x_ref = refs.repeat_interleave(len(EMOTIONS), 0)
        emo = torch.arange(len(EMOTIONS)).repeat(n)
        seed = self.config.train.seed
        engine = Engine.from_model(self.config, self.sampling_model(), self.device)  # the config's sampling
        videos = engine.sample(x_ref, emo, [seed + i for i in range(len(x_ref))])
        return save_png(self.run_dir / "samples" / f"step_{step:06d}.png", video_grid(videos.cpu()), scale=2)

    def tidy(self) -> None:
        """What a killed run left: its temporaries go, metrics.jsonl is cut back to the step resumed from."""
        gone = remove_stale_temps(self.run_dir)
        if gone:
            self.log(f"removed {len(gone)} temporary file(s) a killed run left in {self.run_dir}")
        last_time = trim_metrics(self.run_dir / METRICS, self.start)
        if self.elapsed is None:                  # an older checkpoint: the last metrics line's time, or 0
            self.elapsed = float(last_time or 0.0)

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self) -> Path:
        tr = self.config.train
        main = self.dist.main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.tidy()
            atomic_write_text(self.run_dir / "config.json", json.dumps(self.config.to_dict(), indent=2))
        if tr.sample_every and not self.step.previews:
            self.log(f"{self.config.setting} renders no preview strips: --sample-every is ignored")
        if self.start >= tr.steps:
            self.log(f"{self.run_dir / LAST} already reached step {self.start} of {tr.steps}; nothing to do")
            return self.run_dir / LAST
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        cols = [TextColumn(f"[bold]{self.config.setting}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[losses]}")]
        self.t0 = time.time() - (self.elapsed or 0.0)   # `time` goes on from the checkpoint's
        with (open(self.run_dir / METRICS, "a") if main else contextlib.nullcontext()) as mlog, \
                Progress(*cols, disable=not self.progress, transient=False) as bar:
            task = bar.add_task("train", total=tr.steps, completed=self.start, losses="")
            if main and self.overridden:   # the run's record says where its trajectory changed
                mlog.write(json.dumps({"step": self.start, "override": self.overridden}) + "\n")
                self.log(f"--override at step {self.start}: " + ", ".join(
                    f"{k} {v['was']} -> {v['now']}" for k, v in self.overridden.items()))
            for step in range(self.start, tr.steps):
                self.model.train()
                # every process draws its own random numbers (rank 0's equal a single-process run's)
                gen = step_generator(tr.seed + 100_003 * self.dist.rank, step)
                # what draws from the global RNG (the thesis U-Net's dropout) is a function of (seed, step) too,
                # so a resumed run repeats the uninterrupted one exactly
                seed = step_generator(tr.seed + 100_003 * self.dist.rank, step, stream=1)
                torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=seed)))
                losses = self.step(self.batch(step), gen=gen, step=step)
                self.ema.update(step)
                done = step + 1
                if (done % tr.log_every == 0 or done == tr.steps) and self.dist.enabled:
                    losses = self.dist.mean(losses)
                if not main:
                    continue
                if done % tr.log_every == 0 or done == tr.steps:
                    mlog.write(json.dumps({"step": done, "time": round(time.time() - self.t0, 2), **losses}) + "\n")
                    mlog.flush()
                    bar.update(task, losses=" ".join(f"{k}={v:.3f}" for k, v in list(losses.items())[:4]))
                if done % tr.ckpt_every == 0 or done == tr.steps:
                    self.save(done)
                if tr.sample_every and self.step.previews and (done % tr.sample_every == 0 or done == tr.steps):
                    self.preview(done)
                bar.update(task, completed=done)
        self.dist.barrier()   # the others wait for rank 0's last checkpoint
        return self.run_dir / LAST


def _changed(run_dir: Path, train, given: dict, override: bool) -> dict:
    """{option: {"was": saved, "now": given}} for the TRAJECTORY options given with other values than the
    resumed run's; a ConfigError naming them unless `override`."""
    changed = {k: {"was": getattr(train, k), "now": v} for k, v in given.items()
               if k in TRAJECTORY and getattr(train, k) != v}
    if changed and not override:
        diff = ", ".join(f"--{k.replace('_', '-')} {v['now']} (saved: {v['was']})" for k, v in changed.items())
        raise ConfigError(f"the run in {run_dir} was trained with other options: {diff}; resume without them, or pass "
                          f"--override to change them (recorded in metrics.jsonl), or --fresh to start over")
    return changed


def _with_steps(train, steps):
    return dataclasses.replace(train, steps=max(steps, train.steps))


def _try_split(root, split):
    try:
        return load_split(root, split)
    except Exception:  # noqa: BLE001 - previews fall back to the training split
        return None
