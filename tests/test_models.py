"""CycleGAN.step and Pix2Pix.step: the official update order, the loss terms, forward-call counts,
the ablation switches, and translate."""
from __future__ import annotations

import copy

import pytest
import torch

from cyclegan_edu.config import Config
from cyclegan_edu.losses import GANLoss
from cyclegan_edu.models import CycleGAN, Pix2Pix, build_model

WEIGHTED = {"cycle_A", "cycle_B", "idt_A", "idt_B"}     # also logged times their weight, as *_weighted
ALL_KEYS = {"G_AB_gan", "G_BA_gan", "G_total", "D_A", "D_B"} | WEIGHTED | {k + "_weighted" for k in WEIGHTED}


def tiny(**changes) -> Config:
    return Config(image_size=32, load_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=2, device="cpu",
                  precision="fp32").replace(**changes)


def batch(seed: int, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def cyclegan(**changes) -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(tiny(**changes)).setup()


def snapshot(nets) -> list[torch.Tensor]:
    return [p.detach().clone() for net in nets for p in net.parameters()]


def grads(nets) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for net in nets for p in net.parameters()]


def same(a, b) -> bool:
    return len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
                                    for x, y in zip(a, b))


def test_step_returns_every_loss_term():
    losses = cyclegan().step(*batch(0))
    assert set(losses) == ALL_KEYS
    assert all(isinstance(v, float) and v == v and v >= 0 for v in losses.values())


def test_generator_total_is_the_weighted_sum_of_eq_3():
    c = tiny(lambda_cycle=7.0, lambda_identity=0.3)
    torch.manual_seed(0)
    losses = CycleGAN(c).setup().step(*batch(0))
    expected = (losses["G_AB_gan"] + losses["G_BA_gan"] + 7.0 * (losses["cycle_A"] + losses["cycle_B"])
                + 7.0 * 0.3 * (losses["idt_A"] + losses["idt_B"]))
    assert losses["G_total"] == pytest.approx(expected, rel=1e-5)


def test_weighted_terms_are_the_unweighted_times_their_weight_and_sum_to_the_total():
    """The official code logs cycle_A etc. weighted: our *_weighted are those, and with the GAN terms
    they add up to G_total as the official loss_G is the sum of its logged terms."""
    losses = CycleGAN(tiny(lambda_cycle=7.0, lambda_identity=0.3)).setup().step(*batch(0))
    for name in ("cycle_A", "cycle_B"):
        assert losses[name + "_weighted"] == pytest.approx(7.0 * losses[name], rel=1e-12)
    for name in ("idt_A", "idt_B"):
        assert losses[name + "_weighted"] == pytest.approx(7.0 * 0.3 * losses[name], rel=1e-12)
    official_G = losses["G_AB_gan"] + losses["G_BA_gan"] + sum(losses[k + "_weighted"] for k in WEIGHTED)
    assert losses["G_total"] == pytest.approx(official_G, rel=1e-5)


def test_losses_are_computed_from_the_networks_before_the_update():
    """G terms use D as it was; D terms use the fakes made by G before its update, with the 0.5 factor."""
    model = cyclegan(pool_size=0)
    before = copy.deepcopy(model)
    real_A, real_B = batch(1)
    losses = model.step(real_A, real_B)
    gan = GANLoss("lsgan")
    with torch.no_grad():
        fake_B, fake_A = before.G_AB(real_A), before.G_BA(real_B)
        assert losses["G_AB_gan"] == pytest.approx(float(gan(before.D_B(fake_B), True)), rel=1e-5)
        assert losses["G_BA_gan"] == pytest.approx(float(gan(before.D_A(fake_A), True)), rel=1e-5)
        assert losses["cycle_A"] == pytest.approx(float((before.G_BA(fake_B) - real_A).abs().mean()), rel=1e-5)
        assert losses["idt_A"] == pytest.approx(float((before.G_AB(real_B) - real_B).abs().mean()), rel=1e-5)
        d_a = 0.5 * (gan(before.D_A(real_A), True) + gan(before.D_A(fake_A), False))
        d_b = 0.5 * (gan(before.D_B(real_B), True) + gan(before.D_B(fake_B), False))
    assert losses["D_A"] == pytest.approx(float(d_a), rel=1e-5)
    assert losses["D_B"] == pytest.approx(float(d_b), rel=1e-5)


def test_update_order_generators_first_with_discriminators_frozen():
    model = cyclegan()
    G, D = (model.G_AB, model.G_BA), (model.D_A, model.D_B)
    opt_G, opt_D = model.optimizers["G"], model.optimizers["D"]
    run_G, run_D = opt_G.step, opt_D.step
    seen: dict = {"order": []}

    def step_G(*args, **kwargs):
        seen["order"].append("G")
        assert same(snapshot(D), seen["D_before"])                # D untouched so far
        assert same(grads(D), seen["D_grads_before"])              # G's backward left D's gradients alone
        assert all(p.requires_grad for net in G for p in net.parameters())
        result = run_G(*args, **kwargs)
        seen["G_after"], seen["G_grads"] = snapshot(G), grads(G)
        return result

    def step_D(*args, **kwargs):
        seen["order"].append("D")
        assert same(snapshot(G), seen["G_after"])
        assert same(grads(G), seen["G_grads"])                     # D's loss did not reach G (detached fakes)
        assert all(g is not None for g in grads(D))
        return run_D(*args, **kwargs)

    opt_G.step, opt_D.step = step_G, step_D
    for k in range(2):                      # the second step starts with D gradients left from the first
        seen["order"].clear()
        seen["D_before"], seen["D_grads_before"] = snapshot(D), grads(D)
        G_before = snapshot(G)
        model.step(*batch(k))
        assert seen["order"] == ["G", "D"]
        assert not same(snapshot(D), seen["D_before"]) and not same(snapshot(G), G_before)
        assert same(snapshot(G), seen["G_after"])                 # the D update left G alone
        assert all(p.requires_grad for net in D for p in net.parameters())   # unfrozen again
    assert seen["D_grads_before"][0] is not None


def test_zero_generator_weights_leave_the_generators_unchanged():
    model = cyclegan(lambda_gan=0.0, lambda_cycle=0.0, lambda_identity=0.0)
    G_before, D_before = snapshot((model.G_AB, model.G_BA)), snapshot((model.D_A, model.D_B))
    losses = model.step(*batch(0))
    assert losses["G_total"] == 0
    assert same(snapshot((model.G_AB, model.G_BA)), G_before)
    assert not same(snapshot((model.D_A, model.D_B)), D_before)


def count_forwards(model: CycleGAN, **changes) -> dict[str, int]:
    counts = dict.fromkeys(("G_AB", "G_BA", "D_A", "D_B"), 0)
    for name in counts:
        getattr(model, name).register_forward_hook(lambda *_, n=name: counts.__setitem__(n, counts[n] + 1))
    model.step(*batch(0))
    return counts


@pytest.mark.parametrize("changes, expected", [
    # the official code: G(x), F(G(x)) and G(y) for the identity; D once for G's loss, twice for its own
    ({}, {"G_AB": 3, "G_BA": 3, "D_A": 3, "D_B": 3}),
    ({"lambda_identity": 0.0}, {"G_AB": 2, "G_BA": 2, "D_A": 3, "D_B": 3}),
    ({"lambda_identity": 0.0, "cycle_forward": False}, {"G_AB": 2, "G_BA": 1, "D_A": 3, "D_B": 3}),
    ({"lambda_cycle": 0.0}, {"G_AB": 1, "G_BA": 1, "D_A": 3, "D_B": 3}),
])
def test_each_network_runs_the_minimum_number_of_forwards(changes, expected):
    assert count_forwards(cyclegan(**changes)) == expected


@pytest.mark.parametrize("changes, absent", [
    ({"lambda_identity": 0.0}, {"idt_A", "idt_B"}),
    ({"cycle_forward": False}, {"cycle_A"}),
    ({"cycle_backward": False}, {"cycle_B"}),
    ({"lambda_cycle": 0.0}, {"cycle_A", "cycle_B", "idt_A", "idt_B"}),
])
def test_ablation_switches_drop_their_loss_terms(changes, absent):
    absent = absent | {k + "_weighted" for k in absent}
    losses = cyclegan(**changes).step(*batch(0))
    assert set(losses) == ALL_KEYS - absent
    assert all(losses[k] > 0 for k in ALL_KEYS - absent - {"G_total"})


def test_cycle_alone_leaves_the_gan_terms_out_of_the_total():
    losses = cyclegan(lambda_gan=0.0, lambda_identity=0.0).step(*batch(0))
    assert losses["G_AB_gan"] > 0 and losses["G_BA_gan"] > 0       # still measured, for the plots
    assert losses["G_total"] == pytest.approx(10 * (losses["cycle_A"] + losses["cycle_B"]), rel=1e-6)


def test_vanilla_gan_mode_and_pool_are_used():
    model = cyclegan(gan_mode="vanilla", pool_size=3)
    assert model.gan_loss.mode == "vanilla"
    model.step(*batch(0))
    assert len(model.pools["fake_A"]) == 2 and len(model.pools["fake_B"]) == 2
    model.step(*batch(1))
    assert len(model.pools["fake_A"]) == 3


def test_identity_loss_needs_equal_channel_counts():
    with pytest.raises(ValueError, match="lambda_identity=0"):
        CycleGAN(tiny(output_nc=1))
    CycleGAN(tiny(output_nc=1, lambda_identity=0.0))


def test_translate_runs_in_eval_mode_without_gradients():
    model = cyclegan(dropout=True)
    x = batch(0, n=3)[0]
    out = model.translate(x, "AtoB")
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    assert not out.requires_grad
    assert torch.equal(out, model.translate(x, "AtoB"))     # dropout off: deterministic
    assert model.G_AB.training                              # the training mode is restored
    model.G_BA.eval()
    with torch.no_grad():
        assert torch.equal(model.translate(x, "BtoA"), model.G_BA(x))
    with pytest.raises(ValueError, match="direction"):
        model.translate(x, "AtoC")


def test_pix2pix_step_and_translate():
    torch.manual_seed(0)
    model = Pix2Pix(tiny()).setup()
    G_before, D_before = snapshot((model.G,)), snapshot((model.D,))
    losses = model.step(*batch(0))
    assert set(losses) == {"G_gan", "G_L1", "G_total", "D"}
    assert losses["G_total"] == pytest.approx(losses["G_gan"] + 100 * losses["G_L1"], rel=1e-5)
    assert not same(snapshot((model.G,)), G_before) and not same(snapshot((model.D,)), D_before)
    assert model.D.model[0].in_channels == 6                 # conditional: judges (input, output) pairs
    x = batch(1)[0]
    out = model.translate(x)
    assert out.shape == x.shape and torch.equal(out, model.translate(x))
    with pytest.raises(ValueError, match="AtoB"):
        model.translate(x, "BtoA")
    with pytest.raises(ValueError, match="power of two"):
        Pix2Pix(tiny(image_size=48, load_size=48))


@pytest.mark.parametrize("gan_mode, criterion", [
    ("lsgan", lambda scores: torch.nn.functional.mse_loss(scores, torch.ones_like(scores))),
    ("vanilla", lambda scores: torch.nn.functional.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))),
])
def test_pix2pix_generator_loss_follows_gan_mode_and_lambda_l1(gan_mode, criterion):
    """By hand: G's loss uses the updated D on (a, G(a)) with the config's GAN loss, plus λ_L1·L1."""
    torch.manual_seed(0)
    model = Pix2Pix(tiny(gan_mode=gan_mode, lambda_l1=7.0, norm="batch", dropout=False)).setup()
    G_before = copy.deepcopy(model.G)
    a, b = batch(0)
    losses = model.step(a, b)
    with torch.no_grad():
        fake = G_before(a)
        gan = float(criterion(model.D(torch.cat([a, fake], 1))))
        l1 = float(torch.nn.functional.l1_loss(fake, b))
    assert losses["G_gan"] == pytest.approx(gan, rel=1e-6)
    assert losses["G_L1"] == pytest.approx(l1, rel=1e-6)
    assert losses["G_total"] == pytest.approx(gan + 7.0 * l1, rel=1e-6)


def test_pix2pix_networks_and_pool_follow_the_config():
    def layers(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())
    # 64 px: a U-Net of 6 levels, whose innermost decoder level but one has pix2pix's dropout
    plain = Pix2Pix(tiny(image_size=64, load_size=64, norm="instance", dropout=False, pool_size=0))
    assert layers(plain, torch.nn.BatchNorm2d) == 0 and layers(plain, torch.nn.Dropout) == 0
    assert plain.pools == {}                                 # pool_size 0: no pool, none to checkpoint
    official = Pix2Pix(tiny(image_size=64, load_size=64, norm="batch", dropout=True))
    assert layers(official.G, torch.nn.BatchNorm2d) > 0 and layers(official.D, torch.nn.BatchNorm2d) > 0
    assert layers(official.G, torch.nn.Dropout) == 1
    pooled = Pix2Pix(tiny(pool_size=3)).setup()
    pooled.step(*batch(0))
    assert len(pooled.pools["fake_AB"]) == 2 and pooled.pools["fake_AB"].images[0].shape[1] == 6  # (a, G(a)) pairs
    pooled.step(*batch(1))
    assert len(pooled.pools["fake_AB"]) == 3


def test_build_model():
    assert isinstance(build_model("cyclegan", tiny()), CycleGAN)
    assert isinstance(build_model("pix2pix", tiny()), Pix2Pix)
    with pytest.raises(ValueError, match="cyclegan"):
        build_model("unit", tiny())


@pytest.mark.parametrize("netD, cls", [("pixel", "PixelDiscriminator"), ("image", "FullImageDiscriminator")])
def test_netD_chooses_the_discriminators_of_both_models(netD, cls):
    cycle, pix = CycleGAN(tiny(netD=netD)), Pix2Pix(tiny(netD=netD))
    assert [type(D).__name__ for D in (cycle.D_A, cycle.D_B, pix.D)] == [cls] * 3
    assert pix.D(torch.zeros(1, 6, 32, 32)).shape[1] == 1            # the conditional D judges (a, b) pairs


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix"])
def test_spectral_norm_wraps_the_discriminators_only_and_a_step_runs(kind):
    from torch.nn.utils import parametrize
    torch.manual_seed(0)
    model = build_model(kind, tiny(spectral_norm=True)).setup()

    def wrapped(nets):
        return [parametrize.is_parametrized(m, "weight") for net in nets for m in net.modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    discriminators = [model.D_A, model.D_B] if kind == "cyclegan" else [model.D]
    generators = [model.G_AB, model.G_BA] if kind == "cyclegan" else [model.G]
    assert all(wrapped(discriminators)) and not any(wrapped(generators))
    before = snapshot(discriminators)
    losses = model.step(*batch(0))
    assert all(v == v and abs(v) != float("inf") for v in losses.values())
    assert not same(before, snapshot(discriminators))                  # D was updated through the wrapper
    restored = build_model(kind, tiny(spectral_norm=True))
    restored.load_state_dict(model.state_dict())                      # checkpoints keep u, v and the weights
    assert same(snapshot([restored]), snapshot([model])) and same(list(restored.buffers()), list(model.buffers()))
    assert not any(wrapped(build_model(kind, tiny()).children()))     # off by default


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix", "distancegan"])
def test_spectral_norm_bounds_how_fast_the_discriminators_score_can_change(kind):
    """Spectral norm bounds each layer's gain; a normalisation layer after it would rescale the features to
    unit variance and undo that: on a nearly flat image (per-image variance 1e-6) instance norm magnifies a
    tiny change a thousandfold. With spectral_norm the discriminators have no normalisation layers, and the
    gradient of their mean score stays small there, as on a textured image (chapter 6's fix of an
    overpowering D)."""
    from torch import nn
    torch.manual_seed(0)
    model = build_model(kind, tiny(spectral_norm=True, ndf=16))
    D = model.D_B if kind != "pix2pix" else model.D
    channels = D.model[0].in_channels
    assert not [m for m in D.modules() if isinstance(m, (nn.modules.instancenorm._InstanceNorm,
                                                          nn.modules.batchnorm._BatchNorm))]
    for _ in range(20):                                                 # let the power iteration settle
        D(torch.randn(2, channels, 32, 32))

    def gradient_norm(image):
        image = image.clone().requires_grad_(True)
        D.eval()(image).mean().backward()
        return image.grad.norm().item()
    flat, textured = 0.5 + 1e-3 * torch.randn(1, channels, 32, 32), torch.rand(1, channels, 32, 32) * 2 - 1
    assert gradient_norm(flat) < 0.2 and gradient_norm(textured) < 0.2
    assert tiny(spectral_norm=True).norm_D == "none" and tiny().norm_D == "instance"


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix"])
def test_lr_D_sets_the_discriminators_learning_rate_only(kind):
    """Chapter 6's imbalance: D's Adam steps with lr_D, G's with lr; unset, both use lr (the paper)."""
    torch.manual_seed(0)
    paper = build_model(kind, tiny()).setup()
    assert {n: o.param_groups[0]["lr"] for n, o in paper.optimizers.items()} == {"G": 2e-4, "D": 2e-4}
    torch.manual_seed(0)
    fast_D = build_model(kind, tiny(lr_D=2e-3)).setup()
    assert {n: o.param_groups[0]["lr"] for n, o in fast_D.optimizers.items()} == {"G": 2e-4, "D": 2e-3}
    with pytest.raises(ValueError, match=r"lr_D=0.0: must be positive \(or unset: the same as lr\)"):
        tiny(lr_D=0.0)
