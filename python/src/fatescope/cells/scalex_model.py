"""The SCALEX-style VAE module (torch): batch-free encoder, decoder with domain-specific batch norm.

Architecture and loss as SCALEX (Xiong et al. 2022): encoder x -> Linear(1024) -> BatchNorm ->
ReLU -> (mu, log var) of a 10-d latent; decoder z -> Linear(n_genes) -> one BatchNorm per batch
("domain") -> sigmoid; loss = BCE x n_genes + 0.5 KL(q(z|x) || N(0, I)). Training and the
chunked transform live in ``fatescope.cells.integrate``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DSBatchNorm(nn.Module):
    """Domain-specific batch norm: one ``BatchNorm1d`` per domain; a domain with a single cell in a
    minibatch passes through unchanged (as SCALEX)."""

    def __init__(self, num_features: int, n_domain: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = num_features
        self.bns = nn.ModuleList([nn.BatchNorm1d(num_features, eps=eps, momentum=momentum) for _ in range(n_domain)])

    @property
    def n_domain(self) -> int:
        return len(self.bns)

    def add_domains(self, n: int) -> None:
        """Append ``n`` new domains (projection): fresh batch norms, statistics to be filled."""
        ref = self.bns[0]
        for _ in range(n):
            bn = nn.BatchNorm1d(self.num_features, eps=ref.eps, momentum=ref.momentum).to(ref.weight.device)
            self.bns.append(bn)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.training:  # running statistics: a per-domain affine map, no masking needed
            mean = torch.stack([bn.running_mean for bn in self.bns])[y]
            var = torch.stack([bn.running_var for bn in self.bns])[y]
            w = torch.stack([bn.weight for bn in self.bns])[y]
            b = torch.stack([bn.bias for bn in self.bns])[y]
            return (x - mean) / torch.sqrt(var + self.bns[0].eps) * w + b
        out = torch.empty_like(x)
        for d in torch.unique(y).tolist():
            idx = torch.nonzero(y == d).squeeze(1)
            out[idx] = self.bns[d](x[idx]) if idx.numel() > 1 else x[idx]
        return out


class Encoder(nn.Module):
    """Batch-free encoder: x -> hidden (BN, ReLU) -> mu, var = exp(log var)."""

    def __init__(self, n_input: int, n_hidden: int = 1024, n_latent: int = 10):
        super().__init__()
        self.fc = nn.Linear(n_input, n_hidden)
        self.bn = nn.BatchNorm1d(n_hidden)
        self.mu = nn.Linear(n_hidden, n_latent)
        self.logvar = nn.Linear(n_hidden, n_latent)

    def hidden_pre_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(h)
        return self.mu(h), torch.exp(self.logvar(h))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.fc(x)
        if x.shape[0] > 1 or not self.training:
            h = self.bn(h)
        mu, var = self.head(h)
        z = mu + var.sqrt() * torch.randn_like(mu)
        return z, mu, var


class Decoder(nn.Module):
    """z -> Linear(n_genes) -> domain-specific BN -> logits (sigmoid gives the reconstruction)."""

    def __init__(self, n_latent: int, n_output: int, n_domain: int):
        super().__init__()
        self.fc = nn.Linear(n_latent, n_output)
        self.norm = DSBatchNorm(n_output, n_domain)  # with one domain: plain batch norm

    def logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(z), y)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z, y))


class ScalexVAE(nn.Module):
    def __init__(self, n_input: int, n_domain: int, n_hidden: int = 1024, n_latent: int = 10):
        super().__init__()
        self.config = dict(n_input=n_input, n_domain=n_domain, n_hidden=n_hidden, n_latent=n_latent)
        self.encoder = Encoder(n_input, n_hidden, n_latent)
        self.decoder = Decoder(n_latent, n_input, n_domain)

    def loss(self, x: torch.Tensor, y: torch.Tensor, beta: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, reconstruction, KL) for one minibatch: BCE x n_genes + beta KL (SCALEX: beta 0.5)."""
        z, mu, var = self.encoder(x)
        logits = self.decoder.logits(z, y)
        recon = F.binary_cross_entropy_with_logits(logits, x) * x.shape[1]
        kl = 0.5 * (var + mu ** 2 - 1 - torch.log(var)).sum(dim=1).mean()
        return recon + beta * kl, recon, kl
