"""The one place that reaches into Captum's private modules (pinned: captum>=0.9;
tests/unit/attribution/test_captum_adapter.py checks the contract on the installed version)."""

from __future__ import annotations

from captum.attr._utils.approximation_methods import approximation_parameters as _approximation_parameters

__all__ = ["integration_points"]


def integration_points(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """``(alphas, weights)``: the points on [0, 1] where Captum's IntegratedGradients evaluates the gradient for
    ``method`` (e.g. "gausslegendre", "riemann_trapezoid") and ``n_steps``, and their weights — what IG's CUDA graph
    must use to compute exactly Captum's sum."""
    step_sizes, alphas = _approximation_parameters(method)
    return list(alphas(n_steps)), list(step_sizes(n_steps))
