"""Triplets of frames by expression similarity and FECNet's triplet loss (Vemulapalli & Agarwala 2019).

What "similar expression" means is a per-frame descriptor y_i (`frame_descriptors`):
    aus     the frame's action-unit intensities, y_i in R^K (the synthetic set's aus.npy ground truth)
    labels  the one-hot of the frame's class (MUG, a folder data set): the video's emotion on the apex frames
            (fv.engine.labels.APEX, 10-21), neutral on the first and last `neutral_edge` frames; the frames
            in between (onset, offset: part-way expressions) are never drawn (`usable_frames`)
Mining (`mine_triplets`), for every anchor a among the N frames of a batch, with d_ij = ||y_i - y_j||_2:
    positive p: drawn uniformly from the `pool` frames of OTHER identities nearest to a, among those that
                leave a negative (d_ap <= max_j d_aj - gap)
    negative n: drawn uniformly from the frames j != a with d_aj >= d_ap + gap
    an anchor without such a pair is dropped.
The positive always shows another person, so the embedding has to match expressions across faces and cannot
lean on who is shown; a negative may be the same person, which pushes one face's expressions apart.
Loss (FECNet), embeddings e on the unit sphere, M triplets:
    L = 1/M sum max(0, ||e_a - e_p||^2 - ||e_a - e_n||^2 + delta_apn),
    delta = margin_same (0.1) where a, p and n share one class, margin_cross (0.2) otherwise.
These are FECNet's margins per triplet type: a one-class triplet differs in intensity or detail only, so it
asks for a smaller gap than one where the expression class changes.
"""

from __future__ import annotations

import torch

from fv.engine.labels import APEX, N_CLASSES, N_FRAMES, NEUTRAL

SIMILARITIES = ("aus", "labels")


def usable_frames(similarity: str, neutral_edge: int) -> torch.Tensor:
    """The frame indices a batch draws from: all 32 (aus), or the neutral edges and the apex (labels)."""
    if similarity == "aus":
        return torch.arange(N_FRAMES)
    edge = list(range(neutral_edge)) + list(range(N_FRAMES - neutral_edge, N_FRAMES))
    return torch.tensor(sorted(set(edge) | set(APEX)))


def frame_classes(emotions: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """emotions [B], frames [B, k] -> class [B, k]: the emotion on apex frames, neutral elsewhere
    (fv.engine.labels.segment_targets)."""
    apex = (frames >= APEX.start) & (frames < APEX.stop)
    return torch.where(apex, emotions[:, None].expand_as(frames), torch.full_like(frames, NEUTRAL))


def frame_descriptors(similarity: str, frames: torch.Tensor, emotions: torch.Tensor,
                      aus: torch.Tensor | None = None) -> torch.Tensor:
    """Descriptors y [B * k, K] of the frames [B, k] of a batch: AU intensities (aus [B, T, K]) or class
    one-hots."""
    if similarity == "aus":
        if aus is None:
            raise ValueError("AU similarity needs the data's aus.npy")
        rows = torch.arange(len(frames))[:, None].expand_as(frames)
        return aus[rows, frames].reshape(frames.numel(), -1).float()
    cls = frame_classes(emotions, frames).reshape(-1)
    return torch.nn.functional.one_hot(cls, N_CLASSES).float()


def mine_triplets(desc: torch.Tensor, subjects: torch.Tensor, gen: torch.Generator, gap: float,
                  pool: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchor, positive, negative) row indices [M] into desc [N, K] (see the module docstring); N + N^2
    numbers are drawn from `gen` whatever the data."""
    N = len(desc)
    d = torch.cdist(desc.double(), desc.double())                          # [N, N]
    rows = torch.arange(N)
    other = subjects[:, None] != subjects[None, :]
    can_pos = other & (d <= d.max(1, keepdim=True).values - gap)
    near = torch.sort(d.masked_fill(~can_pos, float("inf")), dim=1, stable=True).indices[:, :pool]   # [N, pool]
    n_pos = can_pos.sum(1).clamp(max=pool)
    r = (torch.rand(N, generator=gen) * n_pos).long().clamp(max=(n_pos - 1).clamp(min=0))
    pos = near[rows, r]
    can_neg = d >= d[rows, pos][:, None] + gap
    can_neg[rows, rows] = False
    score = torch.rand(N, N, generator=gen).masked_fill(~can_neg, -1.0)
    neg = score.argmax(1)
    keep = (n_pos > 0) & can_neg.any(1)
    return rows[keep], pos[keep], neg[keep]


def triplet_margins(classes: torch.Tensor, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
                    same: float, cross: float) -> torch.Tensor:
    """delta [M]: `same` where the three frames share one class, else `cross`."""
    one = (classes[a] == classes[p]) & (classes[a] == classes[n])
    return torch.where(one, torch.full(a.shape, same), torch.full(a.shape, cross))


def triplet_loss(e: torch.Tensor, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
                 margin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean loss, share of triplets with a positive loss, share ordered right: d_ap < d_an) over M triplets
    of embeddings e [N, D]."""
    d_ap = (e[a] - e[p]).pow(2).sum(1)
    d_an = (e[a] - e[n]).pow(2).sum(1)
    hinge = torch.relu(d_ap - d_an + margin.to(e.device, e.dtype))
    if len(a) == 0:
        zero = e.sum() * 0.0
        return zero, zero.detach(), zero.detach()
    return hinge.mean(), (hinge > 0).float().mean().detach(), (d_ap < d_an).float().mean().detach()


def triplet_accuracy(codes: torch.Tensor, desc: torch.Tensor, subjects: torch.Tensor, seed: int = 0,
                     gap: float = 0.2, pool: int = 3) -> float:
    """Held-out quality of any codes [N, D] (Euclidean): the share of mined triplets (same rule as training,
    positives of other identities) whose anchor is nearer its positive than its negative."""
    a, p, n = mine_triplets(desc, subjects, torch.Generator().manual_seed(seed), gap, pool)
    codes = codes.double()
    return float(((codes[a] - codes[p]).norm(dim=1) < (codes[a] - codes[n]).norm(dim=1)).double().mean())
