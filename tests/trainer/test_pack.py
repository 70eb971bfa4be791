"""Packed checkpoints: EMA weights in fp16, no optimiser state; they load, render and fine-tune."""

import torch

from fv.engine.checkpoint import load_checkpoint, read_checkpoint
from fv.trainer.loop import Trainer
from fv.trainer.pack import pack_checkpoint
from fv.trainer.run import train_setting
from tests.tiny import tiny_gan_config


def test_pack_keeps_ema_weights_and_drops_optimiser(tiny_data, tmp_path):
    last = Trainer(tiny_gan_config(steps=3), tiny_data, tmp_path / "run", progress=False).fit()
    packed = pack_checkpoint(last, tmp_path / "small.safetensors")
    full, small = read_checkpoint(last), read_checkpoint(packed)
    assert not any(k.startswith(("optim.", "ema.")) for k in small.tensors)
    assert packed.stat().st_size < last.stat().st_size / 3
    w_ema = full.tensors["ema.G.out.weight"]
    assert small.tensors["model.G.out.weight"].dtype == torch.float16
    torch.testing.assert_close(small.tensors["model.G.out.weight"].float(), w_ema, atol=1e-3, rtol=1e-3)
    _, model = load_checkpoint(packed)
    assert model["G"].out.weight.dtype == torch.float32
    # D is kept (not averaged): a packed GAN checkpoint can be fine-tuned
    torch.testing.assert_close(small.tensors["model.D.emo.weight"].float(), full.tensors["model.D.emo.weight"],
                               atol=1e-3, rtol=1e-3)
    out = train_setting("baseline", tiny_data, run_dir=tmp_path / "ft", overrides=dict(
        steps=1, batch_size=2, sample_every=0, log_every=1), resume=False, init=packed, progress=False,
        log=lambda m: None)
    assert read_checkpoint(out).step == 1
