"""Run by test_crash.py as a child process: train the tiny baseline into a run folder, to be SIGKILLed.

    crash_worker.py DATA RUN STEPS CKPT_EVERY [step|last STEP]

With the last two arguments the child kills itself (SIGKILL, no cleanup) in the middle of publishing a
checkpoint, deterministically: it lets the real writer finish the temporary of step STEP's checkpoint
(`step`) or of its copy to last.safetensors (`last`), cuts the temporary to half its size, as a kill
mid-write leaves it, and dies before it is renamed. Nothing of fv is replaced: the real writers run.
"""

import os
import shutil
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import fv.engine.checkpoint as checkpoint  # noqa: E402
from fv.trainer.loop import Trainer  # noqa: E402
from tests.tiny import tiny_gan_config  # noqa: E402


def die_half_written(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_while_publishing(what: str, step: int) -> None:
    if what == "step":
        save_file = checkpoint.save_file

        def save_then_die(tensors, filename, metadata):
            save_file(tensors, filename, metadata=metadata)
            if metadata["fv.step"] == str(step):
                die_half_written(filename)
        checkpoint.save_file = save_then_die
    else:
        copyfile = shutil.copyfile

        def copy_then_die(src, dst):
            copyfile(src, dst)
            if Path(src).name == f"step_{step:06d}.safetensors":
                die_half_written(dst)
        shutil.copyfile = copy_then_die


def main(data: str, run_dir: str, steps: str, ckpt_every: str, what: str = "", step: str = "0") -> None:
    torch.set_num_threads(1)          # as the tests' own process: the same arithmetic, bit for bit
    if what:
        kill_while_publishing(what, int(step))
    cfg = tiny_gan_config(steps=int(steps), ckpt_every=int(ckpt_every))
    Trainer(cfg, data, run_dir, device="cpu", progress=False, log=lambda m: None).fit()


if __name__ == "__main__":
    main(*sys.argv[1:])
