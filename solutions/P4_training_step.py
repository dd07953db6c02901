"""Answer to problem set 4 (notebooks/problems/P4_training_step.ipynb): one CycleGAN training step.

Instructor's file: keep it out of what you hand out. See book/problem_sets.md.
"""
from cyclegan_edu.losses import GANLoss, cycle_loss, identity_loss

lsgan = GANLoss("lsgan")


def training_step(G, F, D_X, D_Y, opt_G, opt_D, pool_X, pool_Y, x, y, lambda_cyc=10.0, lambda_id=0.5):
    """G and F first, against the discriminators as they are; then D_X and D_Y on pooled, detached fakes."""
    # 1. the generators; D is frozen so that G's loss does not fill D's gradients
    for p in (*D_X.parameters(), *D_Y.parameters()):
        p.requires_grad_(False)
    opt_G.zero_grad()
    fake_y, fake_x = G(x), F(y)
    loss_G = (lsgan(D_Y(fake_y), True) + lsgan(D_X(fake_x), True)
              + lambda_cyc * (cycle_loss(x, F(fake_y)) + cycle_loss(y, G(fake_x)))
              + lambda_cyc * lambda_id * (identity_loss(y, G(y)) + identity_loss(x, F(x))))
    loss_G.backward()
    opt_G.step()

    # 2. the discriminators, on the fakes above: from the pool, and detached from G's graph
    for p in (*D_X.parameters(), *D_Y.parameters()):
        p.requires_grad_(True)
    opt_D.zero_grad()
    old_x, old_y = pool_X.query(fake_x.detach()), pool_Y.query(fake_y.detach())
    loss_D_X = 0.5 * (lsgan(D_X(x), True) + lsgan(D_X(old_x), False))
    loss_D_Y = 0.5 * (lsgan(D_Y(y), True) + lsgan(D_Y(old_y), False))
    (loss_D_X + loss_D_Y).backward()
    opt_D.step()
    return loss_G.item(), (loss_D_X + loss_D_Y).item()
