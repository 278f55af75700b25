"""Analyses over a dense :class:`~hrnet_explorer.Trace`: the head's exact per-stream split (:mod:`.split`)."""

from __future__ import annotations

from torch import nn

from ..trace import Trace
from ..zoo import LoadedModel
from .split import HeadSplit, fold_conv_bn, split_head
from .trace import dense_of

__all__ = ["head_split"]


def head_split(model: LoadedModel | nn.Module, trace: Trace) -> HeadSplit:
    """The head split of every pixel of ``trace`` (a :func:`~hrnet_explorer.dense.dense_trace` of ``model``,
    keep="all"), with its reconstruction errors against the traced pre-activation and scores."""
    head = dense_of(model).head
    a, c = fold_conv_bn(head.conv, head.bn)
    device = trace["head.presum"].device
    streams = [trace[f"head.stream{k}"] for k in range(len(head.channels))]
    return split_head(
        streams,
        a.to(device),
        c.to(device),
        head.classifier.weight.detach().to(device),
        head.classifier.bias.detach().to(device),
        trace["head.presum"],
        trace["head.scores"],
    )
