"""One forward of a dense HRNet with every stream, fuse edge and head map captured: a :class:`~hrnet_explorer.Trace`.

Names: the backbone's are those of the classification trace up to stage 4's fused maps
(:func:`hrnet_explorer.anatomy.trace_names` of the features-only backbone), then the head's:

    head.stream{k}   stream k upsampled to stride 4 (stream 0 as it is)
    head.presum      BN(conv1×1(concat)): the head's pre-activation, Σ_k contribution_k + bias (dense.split)
    head.hidden      ReLU(head.presum)
    head.scores      the class scores at stride 4
    logits           the class scores upsampled to the input: [B, classes, H, W]
"""

from __future__ import annotations

import torch
from torch import nn

from ..anatomy import module_refs, trace_names
from ..copies import private_copy
from ..errors import ArgumentError, InputError
from ..hooks import KEEPS, Keep, MapRecorder, hooks_installed, hrnet_hooks
from ..images import ImageInput, to_batch
from ..trace import Trace
from ..zoo import LoadedModel
from .model import DenseHRNet, check_dense_input, to_input

__all__ = ["head_names", "dense_trace", "dense_trace_names", "dense_of"]


def dense_of(model: LoadedModel | nn.Module) -> DenseHRNet:
    """The :class:`DenseHRNet` of ``model`` (itself, or a LoadedModel's), or a TypeError saying what it is."""
    net = model.model if isinstance(model, LoadedModel) else model
    if not isinstance(net, DenseHRNet):
        raise ArgumentError(
            f"Expected a dense HRNet (hrnet_explorer.dense, e.g. load_model('lab-seg')), got {type(net).__name__}; "
            "a classifier is traced with hrnet_explorer.trace()."
        )
    return net


def head_names(num_streams: int = 4) -> list[str]:
    """The head's trace names, in forward order."""
    return [f"head.stream{k}" for k in range(num_streams)] + ["head.presum", "head.hidden", "head.scores", "logits"]


def dense_trace_names(model: LoadedModel | nn.Module) -> list[str]:
    """The names :func:`dense_trace` records, in forward order, without running the model."""
    net = dense_of(model)
    return trace_names(net.backbone) + head_names(len(net.head.channels))


def dense_trace(
    model: LoadedModel | DenseHRNet,
    inputs: torch.Tensor | ImageInput,
    *,
    keep: Keep = "all",
    store: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    input_size: int | None = None,
) -> Trace:
    """Run a dense HRNet once on ``inputs`` and capture every stream, edge, fused map and head map.

    ``inputs``: a preprocessed Bx3xHxW tensor (H, W multiples of 32) or one image (needs a LoadedModel for its
    preprocessing). ``keep``, ``store``, ``dtype`` as for :func:`hrnet_explorer.trace`. The backbone runs as the
    hook engine's private exact copy (:mod:`hrnet_explorer.copies`), in fp32: ``logits`` are bitwise those of
    ``model(x)``, and the caller's model is never hooked.
    """
    if keep not in KEEPS:
        raise InputError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
    net = dense_of(model)
    if net.training:
        raise InputError("The model is in training mode (BatchNorm would update its statistics); call .eval() first.")
    loaded = model if isinstance(model, LoadedModel) else None
    if loaded is not None and not isinstance(inputs, torch.Tensor):
        x = to_batch(inputs, loaded.data_config, input_size)
    elif isinstance(inputs, torch.Tensor):
        x = inputs
    else:
        raise ArgumentError("Tracing an image needs a LoadedModel (for its preprocessing); pass a tensor otherwise.")
    x = check_dense_input(x)
    param = next(net.parameters())
    x = x.to(param.device, param.dtype)
    rec = MapRecorder(keep, torch.device(store) if store is not None else None, dtype)
    run = private_copy(net.backbone, "exact")  # the caller's backbone is never hooked
    with run.lock, hooks_installed(hrnet_hooks(run.net, rec)), torch.inference_mode():
        ups, presum, scores = net.head.parts(run.net(x))
        for k, u in enumerate(ups):
            rec.put(f"head.stream{k}", u)
        rec.put("head.presum", presum)
        rec.put("head.hidden", net.head.act(presum))
        rec.put("head.scores", scores)
        rec.put("logits", to_input(scores, tuple(x.shape[-2:])))
    return Trace(
        variant=loaded.name if loaded else net.variant,
        input_shape=tuple(x.shape),
        keep=keep,
        modules=module_refs(net.backbone),
        shapes=dict(rec.shapes),
        maps=dict(rec.maps),
        summaries=dict(rec.summaries),
        fusion_cache=dict(rec.fusion),
        weights=loaded.weights if loaded else None,
    )
