"""The motion codes of both_retrievedMcs: expression embeddings of real training videos (thesis 3.4.2-3.4.4).

Every training video's 32 frames are embedded by a frozen expression network (FECNet in the thesis) and
reduced to D = unet.motion_dim = 16 dimensions, FECNet's width. The trajectories [N, 32, D] go into the
model's MotionBank: training conditions each video on its own codes or, with motion mixing, on those of a
same-emotion video of another subject (3.4.4); sampling retrieves a training trajectory of the target
emotion (MotionBank.retrieve). The networks, by name (fv.trainer.expression_embedders; the name is stored in
the run's config, DiffusionConfig.embedder):
    fecnet-fv16 (default)  fv's FECNet-style embedder, trained by triplets (`fv train embedder`): 16-D unit
                           vectors, subject-centred and rotated onto their principal axes with ONE scale for
                           all (F = D = 16), so the distances the triplets trained are kept
    fer2013-wtf-spcaD      the FER2013 CNN's penultimate layer (fv.metrics.expression), F = 304: the same
                           network that scores AEA/DEA, so it judged the setting it drove (before issue 15)
Held-out quality of both: benchmarks/embedder_quality.py; the numbers are in fv.trainer.expression_embedders.

The projection (whitened for the FER features; one global scale for the FECNet-style embeddings) and the
subject centring ("spca"; every FECNet-style embedder):
    f_{n,t}   in R^F   features of frame t of training video n
    spca:  g_{n,t} = f_{n,t} - mu_{s(n)},  mu_s = mean of f over all frames of subject s's videos
    pca:   g_{n,t} = f_{n,t}
    z_{n,t} = Sigma^{-1/2} V^T (g_{n,t} - m)      m = mean of g, V [F, D] the top-D principal axes of
              the training frames' g, Sigma = diag of their variances: whitened PCA, so every code
              dimension has mean 0 and variance 1 over the training frames ("standardised").
For the FER features, measured on fv's synthetic set (15 train / 5 held-out identities, one take each,
version 1; held-out codes use their own subject means): apex-frame emotion by nearest centroid, and R^2 of
a linear fit from codes to the ground-truth action units.
                      clips224: apex  AU R^2      clips64: apex  AU R^2
    pca,  whitened              0.78    0.10               0.71   -0.29
    spca, whitened              0.96    0.76               0.92    0.59
    spca, one global scale      0.85    0.76               0.74    0.59
Why subject-centred: FECNet is trained to ignore who makes an expression; the FER features are not -
uncentred, the subject explains 63-69 % of the code variance of held-out identities. Identity-free
codes are also what motion mixing aims at: the U-Net should take the face from x_ref, not from the
codes. MUG's subjects each act most of the six emotions, so mu_s is a subject's appearance plus a
similar expression average for all. Why whitened: it gives each axis unit variance (the U-Net's input
scale) and separates emotions better than one global scale at the same R^2. Why not LDA: 6 emotions
(+ neutral) give at most 6 discriminant axes, not 16; filling up with further generalized
eigenvectors gave held-out AU R^2 between -0.5 and 0.3 (same data, FER windows 0.375 and 0.42).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from fv.data.layout import VideoSplit
from fv.engine.motion import MotionBank
from fv.engine.labels import EMOTIONS, N_FRAMES
from fv.trainer.expression_embedders import (DEFAULT_EMBEDDER, FER_EMBEDDER, EmbedderSpec,  # noqa: F401
                                             ExpressionBankError, check_embedder, frame_network, parse_embedder)

VIDEOS_PER_CHUNK = 16   # 512 frames per forward pass


@dataclass(frozen=True)
class ExpressionProjection:
    """PCA z = (x - mean) @ components / scale: [..., F] -> [..., D], whitened (one scale per axis) or with one
    scale for all axes (distances kept up to a factor)."""
    mean: np.ndarray         # [F]
    components: np.ndarray   # [F, D] orthonormal columns (zero where the data has fewer than D axes)
    scale: np.ndarray        # [D] standard deviation of each axis over the fitting frames (whitened), or
                             # the root of their mean variance for every axis
    explained: float         # share of the total variance the D axes keep

    @classmethod
    def fit(cls, x: np.ndarray, dim: int, whiten: bool = True) -> "ExpressionProjection":
        """x [M, F] -> the top-`dim` principal axes (SVD of the centred frames, float64)."""
        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)       # x - mean = U diag(s) V^T
        comps = np.zeros((x.shape[1], dim))
        k = min(dim, len(s))
        comps[:, :k] = vt[:k].T
        sign = np.where(comps[np.abs(comps).argmax(0), np.arange(dim)] < 0, -1.0, 1.0)
        comps *= sign                                                  # SVD's sign: largest loading > 0
        var = np.zeros(dim)
        var[:k] = s[:k] ** 2 / len(x)                                  # eigenvalues of the covariance
        live = var > 1e-10 * max(var.max(), 1e-30)                     # axes the data actually has
        comps[:, ~live] = 0.0
        scale = np.where(live, np.sqrt(np.maximum(var, 1e-30)), 1.0)
        if not whiten:
            scale = np.full(dim, np.sqrt(var[live].mean()) if live.any() else 1.0)
        total = float((s ** 2).sum()) / len(x)
        return cls(mean, comps, scale, float(var[live].sum() / total) if total > 0 else 0.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (((np.asarray(x, np.float64) - self.mean) @ self.components) / self.scale).astype(np.float32)


def subject_centre(features: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """[N, T, F] minus each subject's mean over all its frames: g = f - mu_{s(n)}."""
    out = np.asarray(features, np.float64).copy()
    for s in np.unique(subjects):
        rows = subjects == s
        out[rows] -= out[rows].mean((0, 1))
    return out


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=True)


def clip_features(data: VideoSplit, net, progress: bool = True) -> tuple[np.ndarray, str]:
    """Features of every frame by a frame network of fv.trainer.expression_embedders: (float32 [N, 32, F],
    which clips were used: the network's choice, clips224 or clips64)."""
    clips, source = net.clips(data)
    n = len(data)
    out = np.empty((n, N_FRAMES, net.dim), np.float32)
    with _progress(progress) as bar:
        task = bar.add_task(f"embedding {source} ({n} videos)", total=n)
        for a in range(0, n, VIDEOS_PER_CHUNK):
            chunk = np.asarray(clips[a:a + VIDEOS_PER_CHUNK])                 # [c, 32, S, S, 3]
            out[a:a + len(chunk)] = net(chunk.reshape(-1, *chunk.shape[2:])).reshape(len(chunk), N_FRAMES, -1)
            bar.advance(task, len(chunk))
    return out, source


def expression_codes(data: VideoSplit, embedder: str = DEFAULT_EMBEDDER, progress: bool = True,
                     net=None) -> tuple[np.ndarray, ExpressionProjection, str]:
    """Motion codes of every training video: (float32 [N, 32, D], the fitted projection, clips used)."""
    spec = check_embedder(embedder)
    feats, source = clip_features(data, net or frame_network(spec), progress)
    if spec.subject_centred:
        feats = subject_centre(feats, data.subject_ids)
    flat = feats.reshape(-1, feats.shape[-1])                                 # [N * 32, F]
    proj = ExpressionProjection.fit(flat, spec.dim, spec.whitened)
    return proj(flat).reshape(len(data), N_FRAMES, spec.dim), proj, source


def fill_bank(bank: MotionBank, data: VideoSplit, embedder: str, log: Callable[[str], None] = print,
              progress: bool = True) -> None:
    """Embed every training video, fit the projection on the training frames, write the bank's buffers."""
    spec = check_embedder(embedder)
    n, t, d = bank.codes.shape
    if n != len(data):
        raise ExpressionBankError(f"the motion bank has {n} slots but {data.root}/{data.split} has {len(data)} "
                                  f"videos; build the model from a config adapted to this data (bank_size)")
    if (t, d) != (N_FRAMES, spec.dim):
        raise ExpressionBankError(f"the motion bank holds [{t}, {d}] trajectories but {spec.name} makes "
                                  f"[{N_FRAMES}, {spec.dim}]; set the embedder's D to unet.motion_dim = {d}")
    t0 = time.time()
    net = frame_network(spec)
    codes, proj, source = expression_codes(data, spec.name, progress, net)
    dev = bank.codes.device
    bank.codes.copy_(torch.from_numpy(codes).to(dev))
    bank.emotions.copy_(torch.from_numpy(data.emotions).to(dev))
    bank.subjects.copy_(torch.from_numpy(data.subject_ids).to(dev))
    counts = np.bincount(data.emotions, minlength=len(EMOTIONS))
    live = int((proj.components != 0).any(0).sum())
    log(f"motion-code bank: {n} videos x {N_FRAMES} frames of {data.split} ({source}), {spec.name}: "
        f"{proj.mean.shape[0]}-D {net.title}{', subject-centred' if spec.subject_centred else ''}, "
        f"{live} axes keep {proj.explained:.1%} of the variance; per emotion "
        + " ".join(f"{e[:3]}={c}" for e, c in zip(EMOTIONS, counts)) + f" ({time.time() - t0:.1f}s)")


# ---------------------------------------------------------------------------------------- mixing (3.4.4)

def mix_sources(bank: MotionBank, index: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Bank rows whose codes each sample gets: LongTensor [B] on the CPU.

    Sample b keeps its own row index[b] unless u_b < p (u_b ~ U[0, 1)), in which case it takes row
    pool[floor(r_b * |pool|)] (r_b ~ U[0, 1)), pool = the bank's videos with the same emotion and a
    different subject; it keeps its own row where the pool is empty. Exactly 2B numbers are drawn
    from `gen` whatever p is."""
    if not 0.0 <= float(p) <= 1.0:
        raise ExpressionBankError(f"the mixing probability must lie in [0, 1], got {p}")
    emotions, subjects = bank.emotions.cpu(), bank.subjects.cpu()
    idx = index.detach().cpu().long().flatten()
    if len(idx) and (idx.min() < 0 or idx.max() >= len(emotions)):
        raise ExpressionBankError(f"video indices must lie in [0, {len(emotions)}), got {idx.min()}..{idx.max()}")
    if (emotions[idx] < 0).any():
        raise ExpressionBankError("the motion bank is empty; fill it with fill_bank before training")
    u = torch.rand(len(idx), generator=gen)
    r = torch.rand(len(idx), generator=gen)
    src = idx.clone()
    for b in (u < float(p)).nonzero().flatten().tolist():
        i = idx[b]
        pool = ((emotions == emotions[i]) & (subjects != subjects[i])).nonzero().flatten()
        if len(pool):
            src[b] = pool[min(int(r[b] * len(pool)), len(pool) - 1)]
    return src


def mixed_codes(bank: MotionBank, index: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Motion codes [B, 32, D] of the batch's videos (rows `index`), each swapped with probability p for
    a same-emotion, other-subject video's codes (motion mixing, thesis 3.4.4)."""
    return bank.codes[mix_sources(bank, index, p, gen).to(bank.codes.device)]
