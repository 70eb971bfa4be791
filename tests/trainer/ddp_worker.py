"""Run under torchrun by test_distributed.py: train a tiny setting with DDP, then save this rank's weights."""

import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from fv.trainer.run import attach_motion_source  # noqa: E402
from fv.trainer.loop import Trainer  # noqa: E402
from tests.export.conftest import tiny_config  # noqa: E402
from tests.tiny import tiny_gan_config  # noqa: E402


def main(setting: str, data: str, run_dir: str, motion: str) -> None:
    torch.set_num_threads(1)
    if setting == "baseline":
        cfg = tiny_gan_config("baseline", steps=3, batch_size=4, ckpt_every=3)
    else:
        cfg = tiny_config(setting)
        unet = dataclasses.replace(cfg.model.unet, image_size=64)
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, unet=unet),
                          train=dataclasses.replace(cfg.train, steps=3, batch_size=4, ckpt_every=3,
                                                    log_every=1, sample_every=0))
        cfg = attach_motion_source(cfg, Path(motion))
    trainer = Trainer(cfg, data, run_dir, device="cpu", progress=False)
    trainer.fit()
    rank = trainer.dist.rank
    state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(Path(run_dir) / f"rank{rank}_of_{trainer.dist.world}.safetensors"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
