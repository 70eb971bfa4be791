"""One training step of the GAN settings, baseline (VICEGAN) and onlyEM (thesis 2.2.2, 3.1.2).

D_V and (R, G_I) are updated alternately 1:1. The discriminator's emotion and identity heads are trained
with cross-entropy on REAL videos only; the generator is scored by all three heads on its samples:
    L_D = BCE(D(real), 1) + BCE(D(fake), 0) + l_emo CE(emo(real), y) + l_ide CE(ide(real), s)
    L_G = BCE(D(fake), 1) + l_emo CE(emo(fake), y~) + l_ide CE(ide(fake), s)
with y~ a random target emotion and s the subject of the real first frame f(0) the sample starts from.

fv's paired warm start (GANConfig.lambda_rec > 0, the demo preset; 0 in the thesis preset): the target y~ is
the emotion of the real video whose f(0) the fake starts from, and L_G gains lambda_rec * mean|fake - real|.
A short CPU run otherwise settles on copying f(0) (no expression) long before the emotion head's signal
shapes the faces; the pixel term shows G what the target expression of that very face looks like. The GRU
still receives noise, so the trajectory it learns is the data's average onset and return to neutral.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from fv.data.layout import VideoSplit
from fv.engine.config import RunConfig
from fv.engine.gan_sampling import gan_video
from fv.engine.motion import motion_inputs
from fv.engine.labels import EMOTIONS, one_hot
from fv.trainer.distributed import Dist, no_sync


class _Generator(nn.Module):
    """R and G_I as one module, so that DDP sees the generator's whole forward pass in one call."""

    def __init__(self, R: nn.Module, G: nn.Module):
        super().__init__()
        self.R, self.G = R, G

    def forward(self, f0, category, noise, h0):
        return gan_video(self.R, self.G, f0, category, noise, h0)[0]


class GANStep:
    previews = True   # the loop renders preview strips of its EMA weights

    def __init__(self, config: RunConfig, model: nn.ModuleDict, device: torch.device, amp_ctx,
                 dist: Dist = Dist()):
        self.cfg = config.model
        self.model = model
        self.gen = dist.wrap(_Generator(model["R"], model["G"]), device)
        self.disc = dist.wrap(model["D"], device)
        self.device = device
        self.amp = amp_ctx
        tr = config.train
        self.trainable = {"R": model["R"], "G": model["G"]}   # what EMA averages and sampling uses
        gen_params = list(model["R"].parameters()) + list(model["G"].parameters())
        self.optimizers = {
            "G": torch.optim.AdamW(gen_params, lr=tr.lr, betas=tr.betas, weight_decay=tr.weight_decay),
            "D": torch.optim.AdamW(model["D"].parameters(), lr=tr.lr, betas=tr.betas,
                                   weight_decay=tr.weight_decay),
        }

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        """The identity head has one class per training subject."""
        n_id = len(set(data.subjects))
        return config.replace(model=dataclasses.replace(config.model, n_identities=n_id))

    def _fake(self, f0: torch.Tensor, gen: torch.Generator, paired: torch.Tensor | None = None):
        B = f0.shape[0]
        target = torch.randint(0, len(EMOTIONS), (B,), generator=gen)
        if paired is not None:                  # the real videos' own emotions (lambda_rec > 0)
            target = paired.cpu()
        noise, h0 = motion_inputs(B, self.cfg.dim_z_motion, self.cfg.n_frames, gen, self.device)
        video = self.gen(f0, one_hot(target).to(self.device), noise, h0)
        return video, target.to(self.device)

    def __call__(self, batch: dict[str, torch.Tensor], gen: torch.Generator, step: int) -> dict[str, float]:
        real, emotion, subject = batch["video"], batch["emotion"], batch["subject"]
        D = self.disc
        c = self.cfg
        B = real.shape[0]
        paired = c.lambda_rec > 0
        with self.amp():
            fake, target = self._fake(real[:, 0], gen, emotion if paired else None)
        # --- discriminator update: realism on both, classification heads on real only ---
        with self.amp():
            adv, emo, ide = D(torch.cat([real, fake.detach()]))   # one pass (one DDP forward per backward)
            adv_r, emo_r, ide_r, adv_f = adv[:B], emo[:B], ide[:B], adv[B:]
            l_adv_d = (F.binary_cross_entropy_with_logits(adv_r, torch.ones_like(adv_r))
                       + F.binary_cross_entropy_with_logits(adv_f, torch.zeros_like(adv_f)))
            l_emo_d = F.cross_entropy(emo_r.float(), emotion)
            l_ide_d = F.cross_entropy(ide_r.float(), subject)
            loss_d = l_adv_d + c.lambda_emo * l_emo_d + c.lambda_ide * l_ide_d
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizers["D"].step()
        # --- generator (R and G_I) update; D's gradients from it are discarded, so DDP need not sync them ---
        with no_sync(D):
            with self.amp():
                adv, emo, ide = D(fake)
                l_adv_g = F.binary_cross_entropy_with_logits(adv, torch.ones_like(adv))
                l_emo_g = F.cross_entropy(emo.float(), target)
                l_ide_g = F.cross_entropy(ide.float(), subject)
                loss_g = l_adv_g + c.lambda_emo * l_emo_g + c.lambda_ide * l_ide_g
                if paired:
                    l_rec = (fake.float() - real.float()).abs().mean()
                    loss_g = loss_g + c.lambda_rec * l_rec
            self.optimizers["G"].zero_grad(set_to_none=True)
            loss_g.backward()
        self.optimizers["G"].step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "g_adv": l_adv_g.item(),
                "g_emo": l_emo_g.item(), "g_ide": l_ide_g.item(), "d_emo": l_emo_d.item(),
                "d_ide": l_ide_d.item(), **({"g_rec": l_rec.item()} if paired else {})}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}
