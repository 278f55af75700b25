"""Many images at once: a DataLoader (workers, pinned memory) feeding bf16, channels_last batches.

On CUDA each full batch replays one CUDA graph (:class:`~hrnet_explorer.graphs.GraphTracer`); a
last, partial batch is zero-padded to the captured shape and its results sliced. On CPU the eager
trace runs. Results are copied to the CPU batch by batch, so GPU memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .copies import private_copy
from .errors import InputError, UserError
from .graphs import GraphTracer
from .images import ImageInput, preprocess
from .predict import ClassScore, topk_from_logits
from .runtime import autocast
from .trace import Keep, Trace, trace
from .zoo import LoadedModel

__all__ = ["ImageDataset", "trace_many", "predict_many"]


class ImageDataset(Dataset):
    """Images (paths, bytes, PIL, arrays) preprocessed with one data config; errors name the item."""

    def __init__(self, images: Sequence[ImageInput], data_config: dict, input_size: int | None = None):
        self.images, self.data_config, self.input_size = images, data_config, input_size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        try:
            return preprocess(self.images[index], self.data_config, self.input_size)[0]
        except UserError as exc:  # the message names the image; a bug propagates as it is
            raise type(exc)(f"image {index}: {exc}") from exc


def _loader(
    loaded: LoadedModel, images: Sequence[ImageInput], batch_size: int, input_size: int | None, num_workers: int
) -> DataLoader:
    """The preprocessed ``images`` in batches of ``batch_size`` (checked here: DataLoader's own error is a bare
    ValueError about its sampler)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}.")
    return DataLoader(
        ImageDataset(images, loaded.data_config, input_size),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=loaded.device.type == "cuda",
    )


def trace_many(
    loaded: LoadedModel,
    images: Sequence[ImageInput],
    batch_size: int = 64,
    *,
    keep: Keep = "summaries",
    input_size: int | None = None,
    num_workers: int = 0,
    use_graphs: bool | None = None,
    channels_last: bool = True,
    fold: bool | None = None,
    pad: bool | None = None,
) -> Iterator[Trace]:
    """Trace ``images`` in batches; yields one CPU :class:`Trace` per batch, in order.

    ``use_graphs`` (default: on CUDA) replays a CUDA graph per batch; precision is the LoadedModel's.
    ``fold`` / ``pad`` (CUDA graphs only; default: both, with graphs): the GraphTracer's BatchNorm-folded /
    channel-padded private copy (fast traces: within ``FAST_RTOL["cuda"]`` of the exact trace; see
    :class:`~hrnet_explorer.graphs.GraphTracer`); ``fold=False`` traces the exact copy.
    """
    cuda = loaded.device.type == "cuda"
    use_graphs = cuda if use_graphs is None else use_graphs
    if use_graphs and not cuda:
        raise InputError("CUDA graphs need a CUDA device; pass use_graphs=False on CPU.")
    if (fold or pad) and not use_graphs:
        raise InputError("fold and pad apply to the CUDA-graph tracer (use_graphs=True) only.")
    fold = use_graphs if fold is None else fold
    pad = fold if pad is None else pad
    loader = _loader(loaded, images, batch_size, input_size, num_workers)
    tracer = None
    for batch in loader:
        n = batch.shape[0]
        if not use_graphs:
            yield trace(loaded, batch.to(loaded.device, non_blocking=True), keep=keep).head(n)
            continue
        if tracer is None:
            size = batch.shape[-1]
            tracer = GraphTracer(loaded, batch_size, size, keep=keep, channels_last=channels_last, fold=fold, pad=pad)
        if n < batch_size:  # the last batch: pad to the captured shape
            batch = torch.cat([batch, batch.new_zeros(batch_size - n, *batch.shape[1:])])
        yield tracer(batch.to(loaded.device, non_blocking=True)).head(n)  # copies: safe from the next replay


def predict_many(
    loaded: LoadedModel,
    images: Sequence[ImageInput],
    batch_size: int = 64,
    topk: int = 5,
    *,
    input_size: int | None = None,
    num_workers: int = 0,
    channels_last: bool = True,
) -> list[list[ClassScore]]:
    """Top-``topk`` classes of every image (named with the model's classes): plain batched forwards (no
    trace), in the model's precision; on a GPU on the folded, channel-padded private copy (within
    ``FAST_RTOL["cuda"]`` of the exact model's logits), elsewhere on the exact copy."""
    kind = "padded" if loaded.device.type == "cuda" else "exact"
    run = private_copy(loaded.model, kind, channels_last=channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loader = _loader(loaded, images, batch_size, input_size, num_workers)
    results: list[list[ClassScore]] = []
    with torch.inference_mode(), autocast(loaded.device, loaded.precision):
        for batch in loader:
            x = batch.to(loaded.device, non_blocking=True).contiguous(memory_format=memory_format)
            with run.lock:
                logits = run.net(x).float().cpu()
            results += [topk_from_logits(row, topk, loaded.class_names) for row in logits]
    return results
