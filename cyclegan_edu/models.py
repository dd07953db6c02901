"""CycleGAN (Zhu et al. 2017) and its paired baseline pix2pix (Isola et al. 2017): the networks,
their optimizers, and one training ``step`` each.

The paper, this package and the official implementation name the same things three ways (the table
is also in the book's notation chapter). Domain A is the paper's X and B its Y; note that the
official ``netD_A`` judges domain **B** (it is the discriminator of ``netG_A``'s output), so its
``D_A`` loss is our ``D_B``:

=========  ==========  =================  ==========================================================
paper      ours        official           role
=========  ==========  =================  ==========================================================
G          ``G_AB``    ``netG_A``         generator X → Y
F          ``G_BA``    ``netG_B``         generator Y → X
D_X        ``D_A``     ``netD_B``         discriminator of domain A: real A images vs. F(y)
D_Y        ``D_B``     ``netD_A``         discriminator of domain B: real B images vs. G(x)
=========  ==========  =================  ==========================================================

The logged losses (:meth:`CycleGAN.step`) map to the official ones as: ``G_AB_gan`` = ``G_A``,
``G_BA_gan`` = ``G_B``, ``D_B`` = ``D_A``, ``D_A`` = ``D_B``, and the *weighted* terms
``cycle_A_weighted``, ``cycle_B_weighted``, ``idt_A_weighted``, ``idt_B_weighted`` = ``cycle_A``,
``cycle_B``, ``idt_A``, ``idt_B``. Our ``cycle_*`` and ``idt_*`` are the unweighted L1 distances,
λ = 10 and λ·λ_id = 5 times smaller than the official values of the same name.
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from .config import DIRECTIONS, Config
from .devices import autocast, autocast_dtype, select_device
from .losses import GANLoss, cycle_loss, identity_loss
from .networks import (ResnetGenerator, UnetGenerator, add_spectral_norm, build_discriminator, init_weights,
                       run_at_test_time)
from .perceptual import PerceptualLoss
from .pool import ImagePool


def set_requires_grad(nets, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of ``nets``: a generator update must not
    spend time on gradients of the discriminators it is judged by."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class TranslationModel(nn.Module):
    """What the trainer needs of a model: ``step``, ``translate``, optimizers, pools and precision."""

    optimizers: dict[str, torch.optim.Optimizer]
    pools: dict[str, ImagePool]
    # the Config fields that :meth:`step` reads afresh at every step, so that they may change between steps
    # (:meth:`~cyclegan_edu.train.Trainer.set_loss_weights`)
    loss_weights: tuple[str, ...] = ()

    def __init__(self, config: Config):
        super().__init__()
        self.check_config(config)
        self.config = config
        self.pools = {}
        # in a multi-process run, each network's DistributedDataParallel wrapper (distributed.wrap)
        self.ddp: dict[str, nn.Module] = {}
        self.amp_dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None

    def setup(self, device: torch.device | str | None = None) -> "TranslationModel":
        """Move to ``device`` (default: the config's), choose the precision, then build the optimizers
        (Adam with the paper's lr 2e-4 and β = (0.5, 0.999); ``lr_D``, if set, for the discriminators)."""
        device = select_device(self.config.device) if device is None else torch.device(device)
        self.to(device)
        if self.config.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.config.compile:
            for net in self.children():
                if any(True for _ in net.parameters()):
                    net.compile()     # keeps the state_dict keys, unlike torch.compile(net)
        self.amp_dtype = autocast_dtype(self.config.precision, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        c = self.config
        learning_rate = {"D": c.lr if c.lr_D is None else c.lr_D}         # lr_D: chapter 6
        self.optimizers = {name: torch.optim.Adam(params, lr=learning_rate.get(name, c.lr), betas=(c.beta1, c.beta2))
                           for name, params in self.parameter_groups().items()}
        return self

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Raise ValueError, naming the setting and what to do, for settings this model cannot train with
        (beyond :meth:`Config.validate`'s)."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        raise NotImplementedError

    def measure_data(self, dataset) -> None:
        """Measure what the model needs of its training data before its first step; the Trainer calls it
        for a new run. CycleGAN and pix2pix need nothing (DistanceGAN: its distance statistics)."""

    # models that learn G alone translate Config.direction only; their name for the error
    one_way_name: str | None = None

    def check_direction(self, direction: str | None) -> str:
        """The direction to translate (None: the one the model learned, ``Config.direction``), or a
        ValueError saying what to do: a one-way model translates only the direction it learned."""
        learned = self.config.direction
        if direction is None:
            return learned
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: choose 'AtoB' or 'BtoA'")
        if self.one_way_name and direction != learned:
            raise ValueError(f"this {self.one_way_name} learned {learned} only (Config.direction): translate with "
                             f"direction={learned!r}, or train another {self.one_way_name} with direction={direction!r}")
        return direction

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        """One training iteration (:meth:`train_step`); every loss as a float, which waits for the device."""
        return self.read_losses(self.train_step(real_A, real_B))

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training iteration; the losses as detached tensors on the device, so a caller that
        reads them only now and then (:meth:`read_losses`) does not wait for the device every step."""
        raise NotImplementedError

    def read_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """The losses of :meth:`train_step` as floats, fetched from the device in one transfer (in float64
        when a model computes in float64, so that nothing is rounded on the way)."""
        dtype = torch.float64 if any(v.dtype == torch.float64 for v in losses.values()) else torch.float32
        return dict(zip(losses, torch.stack([v.to(dtype) for v in losses.values()]).tolist()))

    def _nets(self, *names: str) -> list[nn.Module]:
        """The networks ``names`` as a training step calls them: through their DistributedDataParallel
        wrapper in a multi-process run, which averages their gradients over the processes, else as they are."""
        return [self.ddp.get(name, getattr(self, name)) for name in names]

    def _backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)

    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _discriminator_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``0.5 (L(D(real), 1) + L(D(fake), 0))``, the fake detached; the 0.5 slows D relative to G (§4)."""
        return 0.5 * (self.gan_loss(D(real), True) + self.gan_loss(D(fake.detach()), False))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x


class CycleGAN(TranslationModel):
    """Two generators and two PatchGAN discriminators trained with Eq. 3 (plus the identity loss).

    Every ablation of the paper's Table 4 is a setting of :class:`~cyclegan_edu.config.Config`:
    ``lambda_gan=0`` (cycle alone), ``lambda_cycle=0`` (GAN alone), ``cycle_backward=False``
    (GAN + forward cycle), ``cycle_forward=False`` (GAN + backward cycle). ``cycle_loss="perceptual"``
    compares ``x`` with ``F(G(x))`` through fixed features instead of pixels (:mod:`cyclegan_edu.perceptual`).
    """

    loss_weights = ("lambda_gan", "lambda_cycle", "lambda_identity")

    @classmethod
    def check_config(cls, config: Config) -> None:
        if config.lambda_identity > 0 and config.input_nc != config.output_nc:
            raise ValueError("the identity loss feeds B images to G_AB, so it needs input_nc == output_nc; "
                             "set lambda_identity=0")

    def __init__(self, config: Config):
        super().__init__(config)
        c = config

        def generator(i, o):
            return ResnetGenerator(i, o, c.ngf, c.n_blocks, c.norm, c.dropout, c.upsample)

        def discriminator(i):
            return build_discriminator(c.netD, i, c.ndf, c.n_layers_D, c.norm_D, c.image_size)

        self.G_AB = generator(c.input_nc, c.output_nc)     # G: X → Y
        self.G_BA = generator(c.output_nc, c.input_nc)     # F: Y → X
        self.D_A = discriminator(c.input_nc)               # D_X: is this a real A image?
        self.D_B = discriminator(c.output_nc)              # D_Y: is this a real B image?
        for net in (self.G_AB, self.G_BA, self.D_A, self.D_B):
            init_weights(net, "normal", c.init_gain)
        if c.spectral_norm:                                 # after the initialisation it keeps (Miyato et al. 2018)
            for net in (self.D_A, self.D_B):
                add_spectral_norm(net)
        self.gan_loss = GANLoss(c.gan_mode)
        self.reconstruction_loss = (cycle_loss if c.cycle_loss == "l1"
                                    else PerceptualLoss(c.perceptual_pixel_weight))   # Config.cycle_loss
        # fake_A images (from G_BA) train D_A; fake_B images (from G_AB) train D_B
        self.pools = {"fake_A": ImagePool(c.pool_size), "fake_B": ImagePool(c.pool_size)}

    def parameter_groups(self):
        return {"G": list(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters())),
                "D": list(itertools.chain(self.D_A.parameters(), self.D_B.parameters()))}

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training iteration, in the official order. Returns every loss term (as tensors;
        :meth:`step` and :meth:`read_losses`: as floats, with the weighted terms): the unweighted
        ``cycle_*`` and ``idt_*`` distances (``cycle_*``: the perceptual distance with
        ``cycle_loss="perceptual"``) and, as ``*_weighted``, the same times their weight in ``G_total``.

        1. Generators (D frozen): ``L_GAN(G) + L_GAN(F) + λ(L_cyc,A + L_cyc,B) + λλ_id(L_id,A + L_id,B)``.
        2. Discriminators on the pooled fakes: ``0.5 (L(D(real), 1) + L(D(fake), 0))`` each; the 0.5
           slows D relative to G (§4).

        Each generator output is computed once and reused by both updates.
        """
        c = self.config
        real_A, real_B = self._prepare(real_A), self._prepare(real_B)
        opt_G, opt_D = self.optimizers["G"], self.optimizers["D"]
        G_AB, G_BA, D_A, D_B = self._nets("G_AB", "G_BA", "D_A", "D_B")
        losses: dict[str, torch.Tensor] = {}

        set_requires_grad((self.D_A, self.D_B), False)
        opt_G.zero_grad(set_to_none=True)
        with self._autocast():
            fake_B = G_AB(real_A)
            fake_A = G_BA(real_B)
            losses["G_AB_gan"] = self.gan_loss(D_B(fake_B), True)
            losses["G_BA_gan"] = self.gan_loss(D_A(fake_A), True)
            if c.lambda_cycle > 0 and c.cycle_forward:    # x → G(x) → F(G(x)) ≈ x
                losses["cycle_A"] = self.reconstruction_loss(real_A, G_BA(fake_B))
            if c.lambda_cycle > 0 and c.cycle_backward:   # y → F(y) → G(F(y)) ≈ y
                losses["cycle_B"] = self.reconstruction_loss(real_B, G_AB(fake_A))
            if c.lambda_cycle * c.lambda_identity > 0:    # G(y) ≈ y and F(x) ≈ x (§5.2), weight λ·λ_id
                losses["idt_A"] = identity_loss(real_B, G_AB(real_B))
                losses["idt_B"] = identity_loss(real_A, G_BA(real_A))
            total_G = c.lambda_gan * (losses["G_AB_gan"] + losses["G_BA_gan"])
            total_G = total_G + c.lambda_cycle * (losses.get("cycle_A", 0) + losses.get("cycle_B", 0))
            total_G = total_G + c.lambda_cycle * c.lambda_identity * (losses.get("idt_A", 0) + losses.get("idt_B", 0))
        losses["G_total"] = total_G
        self._backward(total_G, opt_G)

        set_requires_grad((self.D_A, self.D_B), True)
        opt_D.zero_grad(set_to_none=True)
        with self._autocast():
            losses["D_A"] = self._discriminator_loss(D_A, real_A, self.pools["fake_A"].query(fake_A))
            losses["D_B"] = self._discriminator_loss(D_B, real_B, self.pools["fake_B"].query(fake_B))
        self._backward(losses["D_A"] + losses["D_B"], opt_D)
        if self.scaler is not None:
            self.scaler.update()
        return {name: value.detach() for name, value in losses.items()}

    def read_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Every loss term as a float: the unweighted ``cycle_*`` and ``idt_*`` L1 distances and, as
        ``*_weighted``, the same times their weight in ``G_total`` (what the official code logs as
        ``cycle_A`` etc.; see the module docstring)."""
        c = self.config
        logged = super().read_losses(losses)
        # the terms as the official code logs them (cycle_A etc. there), weighted as in G_total
        weights = {"cycle_A": c.lambda_cycle, "cycle_B": c.lambda_cycle,
                   "idt_A": c.lambda_cycle * c.lambda_identity, "idt_B": c.lambda_cycle * c.lambda_identity}
        logged.update({f"{name}_weighted": weights[name] * logged[name] for name in weights if name in logged})
        return logged

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", eval_mode: bool = True) -> torch.Tensor:
        """Images of the dataset's A (``"AtoB"``) or B (``"BtoA"``) translated into the other domain,
        without gradients: ``G(x)`` and ``F(y)``, the other way round for a model trained with
        ``Config.direction="BtoA"`` (its A is the dataset's B).

        ``eval_mode=False`` runs the generator as the official test.py does by default, in training
        mode (:func:`~cyclegan_edu.networks.set_test_time_mode`); for CycleGAN's generators that is the
        same function as eval mode, since instance norm keeps no running statistics and there is no
        dropout (unless ``config.dropout``), so the default eval mode loses nothing.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: choose 'AtoB' or 'BtoA'")
        net = self.G_AB if direction == self.config.direction else self.G_BA
        with self._autocast():
            out = run_at_test_time(net, self._prepare(x), eval_mode)
        return out.float()


class Pix2Pix(TranslationModel):
    """The paired baseline (Isola et al. 2017): a U-Net ``G: A → B`` and a conditional PatchGAN that
    judges the pair ``(a, b)``, trained with ``L_cGAN + λ_L1 · ||b − G(a)||_1`` (Eq. 4).

    It needs aligned pairs, which is the limitation CycleGAN removes. Everything comes from the
    Config: ``lambda_l1``, ``gan_mode``, ``norm``, ``dropout`` and ``pool_size`` (a history of
    (input, fake) pairs for D when above 0). pix2pix's own values of these (λ_L1 = 100, batch norm,
    dropout in the U-Net, the cross-entropy GAN loss, no pool) are ``get_preset(model="pix2pix")``'s,
    from :data:`~cyclegan_edu.config.PIX2PIX_DEFAULTS`.
    """

    one_way_name = "pix2pix"
    loss_weights = ("lambda_l1",)

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        num_downs = int(math.log2(c.image_size))
        if 2 ** num_downs != c.image_size:
            raise ValueError(f"image_size={c.image_size}: pix2pix's U-Net needs a power of two (32, 64, …, 256)")
        self.G = init_weights(UnetGenerator(c.input_nc, c.output_nc, num_downs, c.ngf, c.norm, dropout=c.dropout),
                              "normal", c.init_gain)
        self.D = init_weights(build_discriminator(c.netD, c.input_nc + c.output_nc, c.ndf, c.n_layers_D, c.norm_D,
                                                  c.image_size), "normal", c.init_gain)
        if c.spectral_norm:
            add_spectral_norm(self.D)
        self.gan_loss = GANLoss(c.gan_mode)
        # (input, fake) pairs for D, as the conditional D judges pairs; no pool (none to checkpoint) at 0
        self.pools = {"fake_AB": ImagePool(c.pool_size)} if c.pool_size > 0 else {}

    def parameter_groups(self):
        return {"G": list(self.G.parameters()), "D": list(self.D.parameters())}

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration in the official order: D on (a, b) vs (a, G(a)), then G."""
        real_A, real_B = self._prepare(real_A), self._prepare(real_B)
        opt_G, opt_D = self.optimizers["G"], self.optimizers["D"]
        G, D = self._nets("G", "D")
        with self._autocast():
            fake_B = G(real_A)
        set_requires_grad((self.D,), True)
        opt_D.zero_grad(set_to_none=True)
        with self._autocast():
            fake_AB = torch.cat([real_A, fake_B.detach()], 1)
            if "fake_AB" in self.pools:
                fake_AB = self.pools["fake_AB"].query(fake_AB)
            loss_D = 0.5 * (self.gan_loss(D(fake_AB), False)
                            + self.gan_loss(D(torch.cat([real_A, real_B], 1)), True))
        self._backward(loss_D, opt_D)

        set_requires_grad((self.D,), False)
        opt_G.zero_grad(set_to_none=True)
        with self._autocast():
            loss_gan = self.gan_loss(D(torch.cat([real_A, fake_B], 1)), True)
            loss_l1 = nn.functional.l1_loss(fake_B, real_B)
            total = loss_gan + self.config.lambda_l1 * loss_l1
        self._backward(total, opt_G)
        set_requires_grad((self.D,), True)
        if self.scaler is not None:
            self.scaler.update()
        return {"G_gan": loss_gan.detach(), "G_L1": loss_l1.detach(), "G_total": total.detach(), "D": loss_D.detach()}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str | None = None, eval_mode: bool = True) -> torch.Tensor:
        """``G(a)`` without gradients. pix2pix learns one direction, ``Config.direction``; ``direction``
        (default: that one) must name it.

        ``eval_mode=True`` (the default here, the official ``--eval``): dropout off, batch norm with its
        running statistics, so the same input gives the same output, which the book's scores need.
        ``eval_mode=False``: pix2pix's own test-time behaviour, the official test.py's default and the
        paper's (§3.3): dropout stays on as the source of noise, so two calls differ, and each image is
        normalised with its own statistics (test.py translates one at a time); the running statistics
        are neither used nor changed. See :func:`~cyclegan_edu.networks.run_at_test_time`.
        """
        self.check_direction(direction)
        with self._autocast():
            out = run_at_test_time(self.G, self._prepare(x), eval_mode)
        return out.float()


def build_model(kind: str, config: Config) -> TranslationModel:
    """``"cyclegan"``, ``"pix2pix"`` or ``"distancegan"``, not yet moved to a device (call ``.setup()``)."""
    from .distancegan import DistanceGAN      # its module builds on this one
    kinds = {"cyclegan": CycleGAN, "pix2pix": Pix2Pix, "distancegan": DistanceGAN}
    if kind not in kinds:
        raise ValueError(f"model={kind!r}: choose one of {sorted(kinds)}")
    return kinds[kind](config)
