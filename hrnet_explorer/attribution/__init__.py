"""Attribution with Captum — pixel methods, per-stream Grad-CAM and shares, stream and edge knockouts —
and the scores that say which attribution to trust.

One shape for every explainer: ``f(loaded, inputs, target=None, ...)`` → a frozen dataclass of CPU
float32 tensors. ``inputs`` is a preprocessed 1x3xHxW tensor or any image :mod:`.images` accepts;
``target`` is a class index of the model (``None``: its top-1 class); results carry the model's class
names (``loaded.class_names``), so ``.label`` and ``to_dict()`` name the class.

- :func:`attribute_pixels` — Integrated Gradients, Saliency, SmoothGrad (NoiseTunnel over
  Saliency), GradientShap and Occlusion, each returning Captum's raw attribution and a 2-D heatmap.
- :func:`gradcam_streams` — Grad-CAM on every resolution stream of one HighResolutionModule.
- :func:`stream_shares` — each final stream's share of the target logit (Layer Integrated Gradients
  at the stage-4 output), with its completeness error.
- :func:`knockout`, :func:`resolution_reliance` — zero fuse edges, report what changes.

Which to trust (scores of the maps):

- :func:`mass_in_mask`, :func:`rank_accuracy`, :func:`pointing_game`, :func:`boundary_contrast` — a map
  scored against a ground-truth mask (the lab's evidence region, or any mask you have).
- :func:`deletion_insertion` — deletion and insertion curves and their AUCs (one batched forward);
  :func:`stream_agreement` — stream shares vs stream knockouts, rank correlation.
- :func:`randomisation_test` — the cascading model-parameter randomisation test (Adebayo et al.).
- :func:`score_attribution`, :func:`trust_report` — all of them for one method or several, with a
  random map and two maps that never look at the model (:func:`model_free_map`) as reference rows.

One family a file: ``pixels`` (the five pixel methods), ``streams`` (per-stream Grad-CAM and shares),
``knockouts``, ``groundtruth`` (scores against a mask), ``faithfulness`` (deletion/insertion, stream
agreement), ``randomisation``, ``trust`` (the table); ``_core`` holds the private model copies, inputs,
targets and baselines they share. Every public name is importable from here.

How the pitfalls of timm's HRNet are handled:

- **The caller's model is never touched.** Every method runs on a private copy from the one cache of
  copies (:mod:`hrnet_explorer.copies`: weakly keyed on the model, rebuilt when its parameters are replaced or
  changed): ``exact`` has every ReLU ``inplace=False``, parameters frozen, no hooks; its logits are bitwise
  those of the original. ``folded`` (input-gradient methods and Occlusion, unless ``fast=False``) has every
  BatchNorm folded into its convolution (``hrnet_explorer.fold``) in channels_last layout: the same function up
  to fp32 rounding (~1e-6 relative). Hooks (Grad-CAM, knockouts) go on the exact copy only, and every use of a
  copy holds its lock, so concurrent callers (the app, traces of the same model) never see each other's hooks.
- **The shared fuse ReLU.** It is one ReLU called once per output stream, so Captum's layer
  methods would only see its last call. Per-stream methods hook the ``HighResolutionModule`` itself
  instead: it is called once per forward and returns the list of all fused streams (Captum 0.9
  accepts list outputs), so one pass gives every stream.
- **Layer IG on the final streams** runs Captum's ``IntegratedGradients`` on the network's head with
  the four stage-4 outputs as its inputs. That is exactly what ``LayerIntegratedGradients`` on the
  stage-4 output computes, without re-running the whole body at every step (and Captum's layer IG
  cannot scatter into a layer that returns a list).
- **Eval mode, gradients.** A model in training mode is refused (BatchNorm would update); methods
  that need gradients refuse to run under ``torch.no_grad()`` / ``torch.inference_mode()``.
  Occlusion and knockouts only run forwards and work anywhere. Attribution always runs in fp32.
"""

from ..copies import clear_private_copies as clear_attribution_cache
from ._core import BASELINES, default_internal_batch_size
from .faithfulness import (
    PERTURBATION_BASELINES,
    Faithfulness,
    PerturbationCurve,
    StreamAgreement,
    deletion_insertion,
    random_map,
    spearman,
    stream_agreement,
)
from .groundtruth import (
    boundary_contrast,
    check_map_and_mask,
    mask_fraction,
    mass_in_mask,
    pointing_game,
    rank_accuracy,
)
from .knockouts import KnockoutResult, knockout, resolution_reliance
from .pixels import GRADIENT_FREE, PIXEL_METHODS, PixelAttribution, attribute_pixels
from .randomisation import RANDOMISATION_LAYERS, RandomisationTest, layer_groups, randomisation_test, randomised_models
from .streams import StreamGradCAM, StreamShares, _body, _head, gradcam_streams, stream_shares  # noqa: F401
from .trust import (
    MODEL_FREE_MAPS,
    RANDOM_MAP,
    REFERENCE_MAPS,
    TRUST_METHODS,
    MethodScores,
    TrustReport,
    model_free_map,
    score_attribution,
    trust_report,
)

__all__ = [
    "PIXEL_METHODS",
    "BASELINES",
    "GRADIENT_FREE",
    "PixelAttribution",
    "StreamGradCAM",
    "StreamShares",
    "KnockoutResult",
    "attribute_pixels",
    "gradcam_streams",
    "stream_shares",
    "knockout",
    "resolution_reliance",
    "default_internal_batch_size",
    "clear_attribution_cache",
    "boundary_contrast",
    "check_map_and_mask",
    "mask_fraction",
    "mass_in_mask",
    "pointing_game",
    "rank_accuracy",
    "PERTURBATION_BASELINES",
    "PerturbationCurve",
    "Faithfulness",
    "StreamAgreement",
    "deletion_insertion",
    "random_map",
    "spearman",
    "stream_agreement",
    "RANDOMISATION_LAYERS",
    "RandomisationTest",
    "layer_groups",
    "randomised_models",
    "randomisation_test",
    "MODEL_FREE_MAPS",
    "RANDOM_MAP",
    "REFERENCE_MAPS",
    "TRUST_METHODS",
    "MethodScores",
    "TrustReport",
    "model_free_map",
    "score_attribution",
    "trust_report",
]
