"""PyTorch reference for `dagmm-tui bench --detector egbad`: the same EGBAD training step on
the same shape.

KDDCUP shape (120 inputs), the authors' tabular network as `EgbadConfig::default_for(120)`
builds it: encoder 120-64-32 (leaky ReLU 0.1), generator 32-64-128-120 (ReLU), discriminator
branches x 120-128 and z 32-128, joint 256-128, logit 128-1 (leaky ReLU 0.1, dropout 0.2 after
each); batch 256, two Adams at 1e-4. One step: z ~ N(0, I); D's loss on (x, E(x)) real and
(G(z), z) generated with E and G off the graph, D's update; then E and G's loss (each fooling
D) through a frozen D (its weights take no gradient, as in dagmm-tui) plus the cycle term
CYCLE × mean |x − G(E(x))| over one row in CYCLE_SHARE of the batch (dagmm-tui's default
`--cycle 1`), their update. Synthetic rows as `bench` makes them. Prints samples/s per thread
count: warm-up excluded, median (min, max) of the repeats. For comparison only; the product
never runs Python.

    python3 benches/torch_egbad.py [--rows 200000] [--repeats 3] [--threads 1 2] [--json]
"""

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from torch_dagmm import rates_of, run

# Weight of the cycle term, as dagmm-tui's default, and the share of a batch's rows it is
# computed on (rows 0, CYCLE_SHARE, 2·CYCLE_SHARE, …, as `egbad.rs`'s CYCLE_SHARE).
CYCLE = 1.0
CYCLE_SHARE = 4


class Egbad(nn.Module):
    def __init__(self, d=120, hidden=64, latent=32, width=128, leak=0.1, dropout=0.2):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.LeakyReLU(leak), nn.Linear(hidden, latent))
        self.generator = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 2 * hidden), nn.ReLU(),
            nn.Linear(2 * hidden, d))
        self.x_branch = nn.Sequential(nn.Linear(d, width), nn.LeakyReLU(leak), nn.Dropout(dropout))
        self.z_branch = nn.Sequential(nn.Linear(latent, width), nn.LeakyReLU(leak), nn.Dropout(dropout))
        self.joint = nn.Sequential(nn.Linear(2 * width, width), nn.LeakyReLU(leak), nn.Dropout(dropout))
        self.logit = nn.Linear(width, 1)

    def discriminator(self):
        return [self.x_branch, self.z_branch, self.joint, self.logit]

    def discriminate(self, x, z):
        return self.logit(self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], dim=1)))


def step(model, d_opt, ge_opt, x):
    n = x.shape[0]
    z = torch.randn(n, model.latent)
    ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
    with torch.no_grad():
        encoded, generated = model.encoder(x), model.generator(z)
    d_loss = bce(model.discriminate(x, encoded), ones) + bce(model.discriminate(generated, z), zeros)
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    for p in d_opt.param_groups[0]["params"]:
        p.requires_grad_(False)
    encoded = model.encoder(x)
    ge_loss = (bce(model.discriminate(x, encoded), zeros)
               + bce(model.discriminate(model.generator(z), z), ones)
               + CYCLE * (model.generator(encoded[::CYCLE_SHARE]) - x[::CYCLE_SHARE]).abs().mean())
    ge_opt.zero_grad(set_to_none=True)
    ge_loss.backward()
    ge_opt.step()
    for p in d_opt.param_groups[0]["params"]:
        p.requires_grad_(True)


def measure(threads, data, batch, repeats):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Egbad(d=data.shape[1])
    model.train()
    d_params = [p for m in model.discriminator() for p in m.parameters()]
    ge_params = list(model.encoder.parameters()) + list(model.generator.parameters())
    d_opt = torch.optim.Adam(d_params, lr=1e-4)
    ge_opt = torch.optim.Adam(ge_params, lr=1e-4)
    return rates_of(lambda x: step(model, d_opt, ge_opt, x), threads, data, batch, repeats)


if __name__ == "__main__":
    run(measure, "EGBAD", 200_000, 256)
