"""One map of a forward, and nothing after it: the hook engine's client that keeps a single trace name's tensor and
stops the forward as soon as it exists (what comes later in the network is not computed)."""

from __future__ import annotations

import re

import torch
from torch import nn

from ..anatomy import ModuleRef
from ..copies import private_copy
from ..hooks import Recorder, hooks_installed, hrnet_hooks
from ..runtime import Precision, autocast

__all__ = ["FUSION_NAME", "MapCapture", "capture_map"]

FUSION_NAME = re.compile(r"stage\d\.module\d+\.(edge\d+to\d+|presum\d+|fused\d+)$")  # maps of a module's fusion


class _Reached(Exception):
    """The target map was captured: the rest of the forward is not needed."""


class MapCapture(Recorder):
    """Keeps trace name ``name``'s tensor (with its autograd graph, if any); :meth:`forward` stops there."""

    def __init__(self, name: str):
        self.name = name
        self.tensor: torch.Tensor | None = None
        self.record_maps = FUSION_NAME.match(name) is None and name != "logits"

    def edges_for(self, ref: ModuleRef) -> bool:
        return self.name.startswith(f"{ref.name}.edge")

    def _got(self, name: str, tensor: torch.Tensor) -> None:
        if name == self.name:
            self.tensor = tensor
            raise _Reached

    def on_map(self, name: str, tensor: torch.Tensor) -> None:
        self._got(name, tensor)

    def on_edge(self, ref: ModuleRef, source: int, target: int, tensor: torch.Tensor) -> None:
        self._got(f"{ref.name}.edge{source}to{target}", tensor)

    def on_fused(self, ref: ModuleRef, target: int, presum: torch.Tensor, fused: torch.Tensor) -> None:
        self._got(f"{ref.name}.presum{target}", presum)
        self._got(f"{ref.name}.fused{target}", fused)

    def forward(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net(x)`` up to the map (with this recorder's hooks installed on ``net``) → the map."""
        self.tensor = None
        try:
            out = net(x)
        except _Reached:
            return self.tensor
        return out  # "logits": the whole forward


def capture_map(
    net: nn.Module, x: torch.Tensor, name: str, *, batch_size: int = 32, precision: Precision = "fp32"
) -> torch.Tensor:
    """Map ``name`` of ``net`` (a timm HRNet; its private exact copy runs) for a preprocessed batch ``x``, float32 on
    the CPU, in batches of ``batch_size``. ``name`` must be checked by the caller (:func:`.units.check_map`)."""
    param = next(net.parameters())
    run = private_copy(net, "exact")
    rec = MapCapture(name)
    parts = []
    with run.lock, hooks_installed(hrnet_hooks(run.net, rec)), torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            with autocast(param.device, precision):
                t = rec.forward(run.net, x[start : start + batch_size].to(param.device, param.dtype))
            parts.append(t.float().cpu())
    return torch.cat(parts)
