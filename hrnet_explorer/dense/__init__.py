"""Dense prediction with HRNetV2 on timm: every pixel's class, explained stream by stream.

- :mod:`.model` — :class:`DenseHRNet` (a features-only timm HRNet + HRNetV2's head) and :func:`create_dense`.
- :mod:`.trace` — :func:`dense_trace`: the backbone's trace names + the head's, one forward.
- :mod:`.split` — the exact per-stream split of the head's pre-activation and class scores (pure maths);
  :func:`head_split` applies it to a dense trace.
- :mod:`.card` — dense checkpoints and their segmentation cards; :mod:`.metrics` — IoU, boundary F.
- :mod:`.explain` — a pixel, a region or a class explained: the exact split, Captum's layer IG, Grad-CAM, IG and
  Saliency, stream and fuse-edge knockouts (imported on its own: it needs Captum, training does not).
"""

from .analyses import head_split
from .model import MAX_SIDE, DenseHead, DenseHRNet, check_dense_input, create_dense
from .split import HeadSplit, fold_conv_bn, split_head
from .trace import dense_of, dense_trace, dense_trace_names, head_names

__all__ = [
    "MAX_SIDE",
    "DenseHRNet",
    "DenseHead",
    "HeadSplit",
    "check_dense_input",
    "create_dense",
    "dense_of",
    "dense_trace",
    "dense_trace_names",
    "fold_conv_bn",
    "head_names",
    "head_split",
    "split_head",
]
