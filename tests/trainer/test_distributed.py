"""Multi-process training (torchrun + DistributedDataParallel, gloo on the CPU): the processes train on
different shards of each global batch yet end with identical weights, rank 0 alone writes the run folder,
and a single process resumes from what they wrote."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fv.engine.checkpoint import read_checkpoint
from fv.trainer.distributed import Dist
from fv.trainer.loop import Trainer
from tests.tiny import tiny_gan_config

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(setting, data, run_dir, motion=""):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
           "127.0.0.1", "--master_port", str(_free_port()), str(WORKER), setting, str(data), str(run_dir),
           str(motion)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_shard_splits_the_global_batch():
    idx = [5, 3, 8, 1, 0, 7]
    parts = [Dist(r, 3).shard(idx) for r in range(3)]
    assert parts == [[5, 3], [8, 1], [0, 7]]
    assert Dist().shard(idx) == idx


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["baseline", "onlyDM"])
def test_ddp_ranks_agree_and_a_single_process_resumes(tiny_data, tmp_path, setting):
    motion = ""
    if setting == "onlyDM":
        motion = Trainer(tiny_gan_config("baseline", steps=1), tiny_data, tmp_path / "gru",
                         progress=False, log=lambda m: None).fit()
    run = tmp_path / "run"
    _torchrun(setting, tiny_data, run, motion)
    r0 = load_file(run / "rank0_of_2.safetensors")
    r1 = load_file(run / "rank1_of_2.safetensors")
    assert r0.keys() == r1.keys()
    for k in r0:                                   # gradients were averaged: same weights everywhere
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=1e-6, msg=k)
    ckpt = read_checkpoint(run / "last.safetensors")
    assert ckpt.step == 3
    trained = "G.out.weight" if setting == "baseline" else "unet.out.2.weight"
    torch.testing.assert_close(ckpt.section("model")[trained], r0[trained])
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3                          # rank 0 alone logs
    # a later single-process run continues from the DDP checkpoint
    t = Trainer(ckpt.config.replace(train=ckpt.config.train.__class__(
        **{**ckpt.config.train.__dict__, "steps": 4, "batch_size": 4})), tiny_data, run, device="cpu",
        progress=False, log=lambda m: None)
    assert t.start == 3
    t.fit()
    assert read_checkpoint(run / "last.safetensors").step == 4
