"""Real progress of long attributions: every batch reported once, in order, to the total; results unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from hrnet_explorer import attribution as A
from hrnet_explorer.attribution.faithfulness import curve_batches

SIZE = 64  # 2×2 final map: cheap, and every method still runs several batches

# method → (options, the batches it runs with them, not counting the top-1 forward of target=None)
CASES = {
    "ig": ({"n_steps": 5, "internal_batch_size": 2}, 1 + math.ceil(5 / 2)),
    "saliency": ({}, 1),
    "smoothgrad": ({"nt_samples": 5, "nt_samples_batch_size": 2}, math.ceil(5 / 2)),
    "gradshap": ({"n_samples": 5, "internal_batch_size": 2}, 1 + math.ceil(5 / 2)),
    "occlusion": ({"window": 16, "stride": 16, "perturbations_per_eval": 3}, 1 + math.ceil(16 / 3)),
}
FINDS_TOP1 = ("ig", "gradshap")  # their first forward gives the top-1 class: no extra one


def _image(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _assert_real_steps(calls: list[tuple[int, int]], total: int) -> None:
    """(0, total), (1, total), …, (total, total): each batch once, in order, ending at the total."""
    assert calls == [(k, total) for k in range(total + 1)]


@pytest.mark.parametrize("method", A.PIXEL_METHODS)
@pytest.mark.parametrize("target", [None, 3])
def test_pixel_progress_counts_real_batches_and_changes_nothing(w18_small, method, target):
    options, batches = CASES[method]
    total = batches + (target is None and method not in FINDS_TOP1)
    x = _image()
    calls = []
    with_progress = A.attribute_pixels(
        w18_small, x, method, target, progress=lambda done, n: calls.append((done, n)), **options
    )
    _assert_real_steps(calls, total)
    plain = A.attribute_pixels(w18_small, x, method, target, **options)
    assert torch.equal(with_progress.attributions, plain.attributions)  # bit-identical
    assert (with_progress.target, with_progress.delta, with_progress.settings) == (
        plain.target,
        plain.delta,
        plain.settings,
    )


def test_each_batch_is_reported_when_it_is_done(w18_small, monkeypatch):
    """A batch counts as done when the next forward begins (its backward has run), the last at the end."""
    from captum.attr._core import integrated_gradients

    events = []
    real = integrated_gradients.IntegratedGradients._attribute

    def spy(self, *args, **kwargs):  # one call of Captum's per chunk
        events.append("chunk")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(integrated_gradients.IntegratedGradients, "_attribute", spy)
    A.attribute_pixels(
        w18_small, _image(), "ig", 1, progress=lambda done, n: events.append(done), n_steps=4, internal_batch_size=2
    )
    # 0 before anything; 1 (the ends' forward) before the first chunk; 2 once that chunk's backward is done
    assert events == [0, "chunk", 1, "chunk", 2, 3]


def test_stream_shares_progress(w18_small):
    x = _image(1)
    calls = []
    shares = A.stream_shares(
        w18_small, x, n_steps=5, internal_batch_size=2, progress=lambda done, n: calls.append((done, n))
    )
    _assert_real_steps(calls, 1 + math.ceil(5 / 2))  # the body on [x, baseline], then the head's chunks
    plain = A.stream_shares(w18_small, x, n_steps=5, internal_batch_size=2)
    assert torch.equal(shares.shares, plain.shares) and shares.delta == plain.delta


def test_randomisation_test_progress(w18_small):
    calls = []
    layers = A.RANDOMISATION_LAYERS[:2]
    test = A.randomisation_test(
        w18_small, _image(2), "saliency", layers=layers, progress=lambda done, n: calls.append((done, n))
    )
    _assert_real_steps(calls, len(layers) + 1)  # the original map, then one per layer group
    assert test.similarity == A.randomisation_test(w18_small, _image(2), "saliency", layers=layers).similarity


def test_deletion_insertion_progress(w18_small):
    x, calls = _image(3), []
    heat = torch.rand(SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    faith = A.deletion_insertion(
        w18_small, x, heat, 1, steps=6, batch_size=4, progress=lambda done, n: calls.append((done, n))
    )
    _assert_real_steps(calls, math.ceil(2 * 6 / 4))  # 12 images, 4 a forward
    assert curve_batches(x, 6, 4) == 3 and curve_batches(x, 6) == 1  # a CPU at 64 px: one forward
    plain = A.deletion_insertion(w18_small, x, heat, 1, steps=6, batch_size=4)
    assert torch.equal(faith.deletion.probabilities, plain.deletion.probabilities)


@pytest.mark.parametrize("method", A.TRUST_METHODS)
def test_score_attribution_progress_moves_within_a_method(w18_small, method):
    """Trust's bar moved once per method (issue 26, item 5): a row's scoring reports its attribution's batches,
    the curves' forwards and each randomisation stage; done and the fraction never fall; it ends at the total."""
    calls = []
    options = CASES[method][0] if method in CASES else None
    layers = A.RANDOMISATION_LAYERS[:2]
    A.score_attribution(
        w18_small,
        _image(4),
        method,
        3,
        steps=4,
        layers=layers,
        method_options=options,
        progress=lambda done, n: calls.append((done, n)),
    )
    done = [d for d, _ in calls]
    fractions = [d / n for d, n in calls]
    assert len(calls) > 2 and len(set(calls)) == len(calls)  # several steps, each reported once
    assert done == sorted(done) and fractions == sorted(fractions) and calls[0][0] == 0
    assert calls[-1][0] == calls[-1][1] and all(n == calls[-1][1] for _, n in calls[1:])  # the total fixed
    # attribution (the reference maps: one step), the curves at 64 px on a CPU (one forward), one per layer group
    attribution = CASES[method][1] if method in CASES else 1
    assert calls[-1][1] == attribution + 1 + (len(layers) if method in A.PIXEL_METHODS else 0)


def test_trust_report_progress(w18_small):
    calls = []
    A.trust_report(
        w18_small, _image(5), ["saliency"], 3, steps=4, randomisation=False, progress=lambda d, n: calls.append((d, n))
    )
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[0] == (0, 2) and calls[-1] == (4, 4)  # saliency 1 + 1, random map 1 + 1
    assert len(calls) > 2


def test_gradshap_seed_covers_captums_numpy_draws(w18_small):
    """Captum draws GradientShap's baselines and path points from numpy: `seed` seeds it, and restores it."""
    import numpy as np

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    runs = [A.attribute_pixels(w18_small, _image(), "gradshap", 3, n_samples=3, seed=7) for _ in range(2)]
    assert torch.equal(runs[0].attributions, runs[1].attributions)
    assert np.array_equal(np.random.get_state()[1], before)
    other = A.attribute_pixels(w18_small, _image(), "gradshap", 3, n_samples=3, seed=8)
    assert not torch.equal(other.attributions, runs[0].attributions)
