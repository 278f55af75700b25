"""The contract hrnet_explorer.attribution._captum relies on, checked on the installed Captum: the integration
points and weights it reads from Captum's private module are the ones IntegratedGradients itself uses."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients

from hrnet_explorer.attribution._captum import integration_points


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_integration_points_reproduce_captums_integrated_gradients(method):
    torch.manual_seed(0)
    w = torch.randn(5)

    def f(x: torch.Tensor) -> torch.Tensor:  # not linear: the points and weights matter
        return (torch.tanh(x * w) * w).sum(1, keepdim=True)

    x, b, n = torch.randn(1, 5), torch.zeros(1, 5), 7
    alphas, weights = integration_points(method, n)
    assert len(alphas) == len(weights) == n and all(0.0 <= a <= 1.0 for a in alphas)
    ours = torch.zeros_like(x)
    for alpha, weight in zip(alphas, weights, strict=True):
        xi = (b + alpha * (x - b)).requires_grad_()
        (grad,) = torch.autograd.grad(f(xi).sum(), xi)
        ours += weight * grad
    ours *= x - b
    theirs = IntegratedGradients(f).attribute(x, b, target=0, n_steps=n, method=method)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
