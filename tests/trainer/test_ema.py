"""EMA of the trainable weights: warm-up d = min(decay, (1 + s) / (10 + s)) on a fresh run; the full decay
when the average starts from trained weights (fine-tuning), so a short fine-tune only nudges it."""

import torch
from torch import nn

from fv.trainer.ema import EMA


def _one_update(warmup: bool, step: int) -> float:
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = EMA({"m": lin}, decay=0.99, warmup=warmup)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    ema.update(step)
    return ema.shadow["m.weight"].item()


def test_warm_up_and_fine_tune_decay_by_hand():
    d0 = min(0.99, 1 / 10)                                        # step 0 of a fresh run: 0.1
    assert abs(_one_update(True, 0) - (d0 * 1 + (1 - d0) * 3)) < 1e-6
    assert abs(_one_update(False, 0) - (0.99 * 1 + 0.01 * 3)) < 1e-6
    assert abs(_one_update(True, 10_000) - (0.99 * 1 + 0.01 * 3)) < 1e-6   # past the warm-up: the same
