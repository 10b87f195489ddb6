"""PyTorch reference for `dagmm-tui bench`: the same DAGMM training step on the same shape.

KDDCUP shape (120 inputs), the paper's network (compression 120-60-30-10-1 tanh and its
mirror, estimation 3-10-4 tanh with dropout 0.5, K = 4), loss = reconstruction + 0.1 energy
+ 0.005 covariance penalty, Adam 1e-4, batch 1024: forward, energy, backward, Adam. Synthetic
rows shaped like `bench`'s (38 skewed numerics and three one-hot groups). Prints samples/s per
thread count: warm-up excluded, median (min, max) of the repeats. For comparison only; the
product never runs Python.

    python3 benches/torch_dagmm.py [--rows 100000] [--repeats 3] [--threads 1 2]
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn


def kddcup_shaped(rows, generator):
    x = torch.zeros(rows, 120)
    x[:, :38] = torch.rand(rows, 38, generator=generator) ** 4
    for start, width in ((38, 3), (41, 66), (107, 13)):
        hot = torch.randint(0, width, (rows,), generator=generator)
        x[torch.arange(rows), start + hot] = 1.0
    return x


class Dagmm(nn.Module):
    def __init__(self, d=120, k=4):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(d, 60), nn.Tanh(), nn.Linear(60, 30), nn.Tanh(),
            nn.Linear(30, 10), nn.Tanh(), nn.Linear(10, 1))
        self.decoder = nn.Sequential(
            nn.Linear(1, 10), nn.Tanh(), nn.Linear(10, 30), nn.Tanh(),
            nn.Linear(30, 60), nn.Tanh(), nn.Linear(60, d))
        self.estimation = nn.Sequential(
            nn.Linear(3, 10), nn.Tanh(), nn.Dropout(0.5), nn.Linear(10, k), nn.Softmax(dim=1))

    def forward(self, x):
        zc = self.encoder(x)
        xr = self.decoder(zc)
        rel = (x - xr).norm(dim=1, keepdim=True) / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cos = nn.functional.cosine_similarity(x, xr, dim=1).unsqueeze(1)
        z = torch.cat([zc, rel, cos], dim=1)
        return xr, z, self.estimation(z)


def loss_of(model, x, lambda1=0.1, lambda2=0.005, eps=1e-6):
    xr, z, gamma = model(x)
    n, dz = z.shape
    phi = gamma.mean(0)
    mu = (gamma.t() @ z) / gamma.sum(0).unsqueeze(1)
    diff = z.unsqueeze(1) - mu.unsqueeze(0)  # n, k, dz
    cov = torch.einsum("nk,nki,nkj->kij", gamma, diff, diff) / gamma.sum(0).view(-1, 1, 1)
    cov = cov + eps * torch.eye(dz)
    chol = torch.linalg.cholesky(cov)
    inv = torch.cholesky_inverse(chol)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
    maha = torch.einsum("nki,kij,nkj->nk", diff, inv, diff)
    log_p = torch.log(phi) - 0.5 * (maha + logdet + dz * torch.log(torch.tensor(2 * torch.pi)))
    energy = -torch.logsumexp(log_p, dim=1).mean()
    penalty = (1.0 / torch.diagonal(cov, dim1=1, dim2=2)).sum()
    recon = ((x - xr) ** 2).sum(1).mean()
    return recon + lambda1 * energy + lambda2 * penalty


def rates_of(step, threads, data, batch, repeats):
    """Samples/s of `step(x)` over epochs of `data` in batches: a warm-up epoch, then the
    spread of `repeats` timed ones (shared with torch_egbad.py)."""

    def epoch():
        started = time.perf_counter()
        order = torch.randperm(data.shape[0])
        for s in range(0, data.shape[0] - batch + 1, batch):
            step(data[order[s:s + batch]])
        seen = (data.shape[0] // batch) * batch
        return seen / (time.perf_counter() - started)

    epoch()  # warm-up
    rates = sorted(epoch() for _ in range(repeats))
    return {"threads": threads, "median": statistics.median(rates), "min": rates[0], "max": rates[-1]}


def measure(threads, data, batch, repeats):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Dagmm()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(x):
        opt.zero_grad(set_to_none=True)
        loss_of(model, x).backward()
        opt.step()

    return rates_of(step, threads, data, batch, repeats)


def run(measure, name, rows, batch):
    """The command line both references share: measure at each thread count, print text or JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=rows)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    data = kddcup_shaped(a.rows, torch.Generator().manual_seed(1))
    results = [measure(t, data, a.batch, a.repeats) for t in a.threads]
    if a.json:
        print(json.dumps({"torch": torch.__version__, "train_samples_per_s": results}))
        return
    print(f"PyTorch {torch.__version__} {name}, {a.rows} rows x 120, batch {a.batch}")
    for r in results:
        print(f"train  threads={r['threads']}  samples/s: min {r['min']:>9.0f}  median {r['median']:>9.0f}  max {r['max']:>9.0f}")


if __name__ == "__main__":
    run(measure, "DAGMM", 100_000, 1024)
