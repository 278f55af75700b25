"""Which explanation to trust: deletion/insertion curves, the randomisation test, stream agreement, ground-truth
scores on the lab, the explain --score and lab benchmark commands, and agreement with Quantus.

Generic tests use hrnet_w18_small with random weights at 64–96 px; the lab model (real weights, offline) at its
224 px only where the ground truth is needed. Margins asserted on the lab were measured first (20 test images,
default settings: mean mass in mask IG 0.48, GradientSHAP 0.34, Occlusion 0.26, SmoothGrad 0.17, Saliency 0.15;
random map 0.085 = the mean mask area 0.085; IG's lowest image 0.26 at a mask area of 0.11).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import quantus  # a test dependency (the "test" extra), never skipped: see the agreement tests at the end
import torch

from hrnet_explorer import attribution as A
from hrnet_explorer import load_model
from hrnet_explorer.attribution._core import _blur
from hrnet_explorer.cli import main
from hrnet_explorer.copies import private_copy
from hrnet_explorer.figures import faithfulness_figure, randomisation_figure
from hrnet_explorer.lab import sample


@pytest.fixture(scope="module")
def lab():
    return load_model("lab", device="cpu")


@pytest.fixture(scope="module")
def x64() -> torch.Tensor:
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------ deletion / insertion


def test_curves_shapes_ends_and_monotone_fractions(w18_small, x64):
    heat = A.random_map((64, 64), seed=3)
    f = A.deletion_insertion(w18_small, x64, heat, 1, steps=20, baseline="zeros")
    for curve in (f.deletion, f.insertion):
        assert curve.fractions.shape == curve.probabilities.shape == (21,)
        assert curve.fractions[0] == 0 and curve.fractions[-1] == 1
        assert bool((curve.fractions.diff() > 0).all())  # strictly more pixels at every step
        assert bool(((curve.probabilities >= 0) & (curve.probabilities <= 1)).all())
        assert curve.auc_raw == pytest.approx(float(torch.trapezoid(curve.probabilities, curve.fractions)))
    # Both curves run between the same two images: the input and the baseline.
    assert f.deletion.probabilities[0] == f.insertion.probabilities[-1] == pytest.approx(f.probability)
    assert f.deletion.probabilities[-1] == f.insertion.probabilities[0] == pytest.approx(f.baseline_probability)
    with torch.inference_mode():
        p = w18_small.model(torch.cat([x64, torch.zeros_like(x64)])).double().softmax(-1)[:, 1]
    assert f.probability == pytest.approx(float(p[0]), rel=1e-4) and f.baseline_probability == pytest.approx(
        float(p[1]), rel=1e-4
    )
    json.dumps(f.to_dict(), allow_nan=False)


def test_both_curves_are_one_batched_forward(w18_small, x64):
    fast = private_copy(w18_small.model, "folded").net
    batches = []
    handle = fast.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        A.deletion_insertion(w18_small, x64, A.random_map((64, 64)), 1, steps=20)
    finally:
        handle.remove()
    assert batches == [40]  # 19 + 19 inner images, the input and the baseline, shared by both curves


def test_normalised_curves_start_or_end_at_one(w18_small, x64):
    f = A.deletion_insertion(w18_small, x64, A.random_map((64, 64)), 3, steps=10)
    assert f.probability < 0.01  # random weights: a small probability, normalised away
    for curve in (f.deletion, f.insertion):
        torch.testing.assert_close(curve.normalised, curve.probabilities / f.probability)
        assert curve.auc == pytest.approx(curve.auc_raw / f.probability)
    assert f.deletion.normalised[0] == f.insertion.normalised[-1] == pytest.approx(1)


def test_the_evidence_first_beats_the_evidence_last(lab):
    """Ground truth for the curves: deleting the evidence region first removes the class at once, deleting it
    last keeps it to the end; inserting it first brings the class back at once."""
    s = sample(2)  # stripes-diagonal: a fine class
    mask = torch.from_numpy(s.mask).float()
    first = A.deletion_insertion(lab, s.image, mask, s.label, steps=10)
    last = A.deletion_insertion(lab, s.image, -mask, s.label, steps=10)
    assert first.deletion_auc < 0.15 < 0.7 < last.deletion_auc, (first.deletion_auc, last.deletion_auc)
    assert first.insertion_auc > 0.85 > 0.3 > last.insertion_auc, (first.insertion_auc, last.insertion_auc)


def test_baselines(w18_small, x64):
    from torchvision.transforms.functional import gaussian_blur

    for hw in ((224, 224), (96, 64)):
        x = torch.randn(1, 3, *hw)
        sigma = max(hw) / 16
        k = 2 * math.ceil(3 * sigma) + 1
        torch.testing.assert_close(_blur(x, sigma), gaussian_blur(x, [k, k], [sigma, sigma]), atol=2e-6, rtol=0)
    heat = A.random_map((64, 64))
    ends = {b: A.deletion_insertion(w18_small, x64, heat, 1, steps=2, baseline=b) for b in A.PERTURBATION_BASELINES}
    assert len({round(f.baseline_probability, 9) for f in ends.values()}) == len(ends)  # five different images
    assert {f.baseline for f in ends.values()} == set(A.PERTURBATION_BASELINES)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"heatmap": torch.rand(32, 32)}, ValueError, "map is 32×32 but the model's input is 64×64"),
        ({"heatmap": torch.full((64, 64), float("nan"))}, ValueError, "NaN"),
        ({"heatmap": torch.rand(3, 64, 64)}, ValueError, "2-D"),
        ({"steps": 0}, ValueError, "steps must be in 1..4096"),
        ({"steps": 2.5}, TypeError, "steps must be an int"),
        ({"baseline": "grey"}, ValueError, "Unknown baseline 'grey'"),
        ({"target": 1000}, ValueError, "class index in 0..999"),
        ({"graphs": True}, ValueError, "CUDA graphs need a CUDA device"),
    ],
)
def test_bad_curve_inputs_are_clear_errors(w18_small, x64, kwargs, error, message):
    args = {"heatmap": A.random_map((64, 64)), "target": 1, **kwargs}
    with pytest.raises(error, match=message):
        A.deletion_insertion(w18_small, x64, **args)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.ones(32, 32, dtype=torch.bool), "mask is 32×32 but the model's input is 64×64"),
        (torch.zeros(64, 64, dtype=torch.bool), "mask is empty"),
        (torch.ones(64, 64), "boolean"),
    ],
)
def test_bad_masks_are_clear_errors(w18_small, x64, mask, message):
    with pytest.raises(ValueError, match=message):
        A.score_attribution(w18_small, x64, "saliency", mask=mask, randomisation=False)


# ------------------------------------------------------------------------------------ rank correlation


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(0, 7, (500,), generator=generator).double()  # many ties
        b = a + torch.randn(500, generator=generator, dtype=torch.float64) * 3
        assert A.spearman(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-12)
    assert A.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert A.spearman([1, 1, 1], [1, 2, 3]) is None  # a constant has no order
    with pytest.raises(ValueError, match="NaN"):
        A.spearman([1, float("nan")], [1, 2])


# ------------------------------------------------------------------------------------ randomisation


def test_layer_groups_hold_every_parameter_once(w18_small):
    net = w18_small.model
    groups = A.layer_groups(net)
    assert tuple(groups) == A.RANDOMISATION_LAYERS
    seen = [id(p) for modules in groups.values() for m in modules for p in m.parameters()]
    assert len(seen) == len(set(seen)) == len(list(net.parameters()))


def test_cascade_randomises_a_private_copy_only(w18_small, x64):
    net = w18_small.model
    before = _state(net)
    params = [id(p) for p in net.parameters()]
    seen = []
    for name, randomised in A.randomised_models(w18_small, seed=1):
        assert randomised.model is not net
        groups = A.layer_groups(randomised.model)
        seen.append(name)
        changed = {
            g: not all(torch.equal(p, before[k]) for k, p in randomised.model.state_dict().items() if _in(g, k))
            for g in groups
        }
        assert all(changed[g] for g in seen) and not any(changed[g] for g in groups if g not in seen)
    assert seen == list(A.RANDOMISATION_LAYERS)
    after = _state(net)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the caller's weights are untouched
    assert [id(p) for p in net.parameters()] == params and not net.training


_PREFIX = {
    "head": ("incre_modules", "downsamp_modules", "final_layer", "classifier"),
    "stage4": ("stage4", "transition3"),
    "stage3": ("stage3", "transition2"),
    "stage2": ("stage2", "transition1"),
    "stem": ("conv1", "bn1", "conv2", "bn2", "layer1"),
}


def _in(group: str, key: str) -> bool:
    return key.split(".")[0] in _PREFIX[group] and not key.endswith("num_batches_tracked")


def test_randomisation_moves_gradient_maps_far_from_the_original(lab):
    """Measured on lab test images 0, 5 and 12 (all five layer groups random): Saliency 0.38 / 0.38 / 0.39,
    IG 0.34 / 0.38 / 0.30, GradientSHAP 0.24 / 0.23 / 0.26, SmoothGrad 0.42 / 0.40 / 0.29 (Spearman of
    |map|; 1 = unchanged). Randomising the head alone already takes them to ≤ 0.55."""
    s = sample(0)
    before = _state(lab.model)
    for method, options in (("saliency", {}), ("ig", {"n_steps": 8})):
        test = A.randomisation_test(lab, s.image, method, s.label, **options)
        assert len(test.similarity) == 5 and test.layers == A.RANDOMISATION_LAYERS
        assert test.similarity[0] < 0.7, test.similarity
        assert test.final_similarity < 0.5, test.similarity
        json.dumps(test.to_dict(), allow_nan=False)
    assert all(torch.equal(v, before[k]) for k, v in lab.model.state_dict().items())
    with pytest.raises(ValueError, match="layers must be"):
        A.randomisation_test(lab, s.image, "saliency", layers=("head", "nope"))


# ------------------------------------------------------------------------------------ ground truth on the lab


def test_the_best_method_finds_the_evidence_and_a_random_map_does_not(lab):
    options = {"ig": {"n_steps": 16}, "smoothgrad": {"nt_samples": 8}, "gradshap": {"n_samples": 8}}
    images = [sample(i) for i in (0, 5)]  # one fine, one coarse
    mass = {m: [] for m in A.TRUST_METHODS}
    areas = []
    for s in images:
        mask = torch.from_numpy(s.mask)
        areas.append(A.mask_fraction(mask))
        for method in A.TRUST_METHODS:
            scores = A.score_attribution(
                lab, s.image, method, s.label, mask=mask, randomisation=False, method_options=options.get(method)
            )
            mass[method].append(scores.mass_in_mask)
            assert scores.mask_fraction == pytest.approx(areas[-1])
    area = float(np.mean(areas))
    means = {m: float(np.mean(v)) for m, v in mass.items()}
    best = max(A.PIXEL_METHODS, key=means.get)
    assert best == "ig", means
    assert means[best] > 4 * area, (means, area)  # measured: 0.55 and 0.48 at areas 0.068 and 0.089
    assert all(abs(r - a) < 0.01 for r, a in zip(mass["random"], areas, strict=True)), (mass["random"], areas)


def test_trust_report_rows_and_json(w18_small, x64):
    report = A.trust_report(w18_small, x64, ["saliency", "occlusion"], steps=5, randomisation=False, streams=True)
    assert [r.method for r in report.rows] == ["saliency", "occlusion", "random"]
    assert len({r.target for r in report.rows}) == 1 and report.streams is not None
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d["methods"]["saliency"]) >= {"deletion_auc", "insertion_auc", "randomisation_similarity"}
    fig = faithfulness_figure(report.rows)
    assert len(fig.data) == 6 and fig.layout.title.text.startswith("Deletion and insertion")
    with pytest.raises(ValueError, match="at least one randomisation"):
        randomisation_figure(report.rows)
    with pytest.raises(ValueError, match="methods must be"):
        A.trust_report(w18_small, x64, ["random"])


def test_stream_agreement(w18_small, x64):
    agreement = A.stream_agreement(w18_small, x64, 1, n_steps=4)
    assert len(agreement.fractions) == len(agreement.knockout_drops) == 4
    assert agreement.spearman is None or -1 <= agreement.spearman <= 1
    knocked = A.resolution_reliance(w18_small, x64, 1, self_edge=True)
    assert list(agreement.knockout_drops) == pytest.approx([-k.logit_delta for k in knocked])
    json.dumps(agreement.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------------ command line


def test_explain_score_json(capsys, tmp_path):
    from PIL import Image

    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(path)
    common = [str(path), "--weights", "random", "--input-size", "64", "--json", "--score"]
    main(["explain", *common, "--method", "saliency", "--score-steps", "8", "--score-baseline", "zeros"])
    out = json.loads(capsys.readouterr().out)
    f = out["faithfulness"]
    assert {"deletion_auc", "insertion_auc", "randomisation_similarity", "random_map"} <= set(f)
    assert f["steps"] == 8 and f["baseline"] == "zeros" and len(f["deletion"]["probabilities"]) == 9
    assert len(f["randomisation"]["similarity"]) == 5
    main(["explain", *common, "--method", "stream-shares", "--steps", "4"])
    assert "stream_agreement" in json.loads(capsys.readouterr().out)["faithfulness"]
    assert main(["explain", str(path), "--weights", "random", "--method", "saliency", "--score-steps", "8"]) == 2
    assert "--score-steps and --score-baseline belong to --score" in capsys.readouterr().err


def test_lab_benchmark_json(capsys):
    main(["lab", "benchmark", "--n", "2", "--methods", "saliency", "--steps", "5", "--randomisation-n", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    row = out["methods"]["saliency"]
    for key in ("mass_in_mask", "pointing_game", "deletion_auc", "insertion_auc", "randomisation_similarity"):
        assert isinstance(row[key], float), key
    assert out["n"] == 2 and out["randomisation_n"] == 1 and 0 < out["baselines"]["mask_area_fraction"] < 0.2
    assert abs(out["baselines"]["random_map"]["mass_in_mask"] - out["baselines"]["mask_area_fraction"]) < 0.01
    assert row["family"]["fine"]["n"] == 2  # test images 0 and 1 are both fine
    with pytest.raises(SystemExit):
        main(["lab", "benchmark", "--methods", "gradcam"])
    assert "methods are a comma-separated subset" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ Quantus agreement

# Tolerances: the curves are the same probabilities computed twice — ours on the BatchNorm-folded
# channels_last copy in one batch, Quantus's on the caller's model one step at a time — so they agree to fp32
# rounding: measured max |Δp| / max p = 3e-6; asserted rtol 1e-4 of the curve's largest value. The ground-truth
# scores are the same arithmetic on the same map: 1e-6.
CURVE_RTOL = 1e-4


def _replace_from(arr, indices, source, **kwargs):
    """A Quantus perturb_func: put ``source``'s values at ``indices`` (insertion; deletion into a blur)."""
    rows = np.arange(arr.shape[0])[:, None]
    out = arr.copy()
    out[rows, indices] = source.reshape(arr.shape[0], -1)[rows, indices]
    return out


def _quantus_curve(model, x, heat, y, steps, start=None, **perturb):
    # Quantus flattens C·H·W features; a [1, H, W] map broadcast over the channels puts a pixel's three
    # channels next to each other in its order (the values are distinct), so 3·H·W / steps features a step
    # remove H·W / steps whole pixels, as ours does. 96×96 px and 24 steps keep both counts whole.
    metric = quantus.PixelFlipping(
        features_in_step=3 * heat.numel() // steps, abs=False, normalise=False, disable_warnings=True, **perturb
    )
    start = x if start is None else start
    curve = metric(
        model=model, x_batch=start.numpy(), y_batch=np.array([y]), a_batch=heat.numpy()[None, None], device="cpu"
    )
    return np.asarray(curve[0])


def test_deletion_and_insertion_agree_with_quantus(w18_small):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 96, 96, generator=generator)
    heat = torch.rand(96, 96, generator=generator)
    y, steps = 7, 24
    model = w18_small.model
    ours = A.deletion_insertion(w18_small, x, heat, y, steps=steps, baseline="zeros")
    blurred = A.deletion_insertion(w18_small, x, heat, y, steps=steps, baseline="blur")
    blur = _blur(x, 96 / 16)  # the "blur" baseline at 96 px
    checks = [
        (ours.deletion, _quantus_curve(model, x, heat, y, steps, perturb_baseline=0.0)),
        (
            ours.insertion,
            _quantus_curve(
                model, x, heat, y, steps, start=torch.zeros_like(x),
                perturb_func=_replace_from, perturb_func_kwargs={"source": x.numpy()},
            ),
        ),
        (
            blurred.deletion,
            _quantus_curve(
                model, x, heat, y, steps, perturb_func=_replace_from, perturb_func_kwargs={"source": blur.numpy()}
            ),
        ),
    ]  # fmt: skip
    for curve, theirs in checks:
        mine = curve.probabilities.numpy()
        assert theirs.shape == (steps,)  # Quantus records the steps after the unperturbed input
        np.testing.assert_allclose(mine[1:], theirs, rtol=0, atol=CURVE_RTOL * mine.max())
        full = np.concatenate([mine[:1], theirs])  # Quantus's curve with the input's probability in front
        assert curve.auc_raw == pytest.approx(float(np.trapezoid(full, dx=1 / steps)), rel=CURVE_RTOL)


def test_ground_truth_scores_agree_with_quantus(w18_small):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 64, 64, generator=generator)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[10:30, 20:50] = True
    maps = [torch.randn(64, 64, generator=generator) for _ in range(4)]
    maps.append(torch.where(mask, 2.0, 0.0) + torch.rand(64, 64, generator=generator))  # points inside
    pointing = []
    for heat in maps:
        inputs = dict(
            model=w18_small.model,
            x_batch=x.numpy(),
            y_batch=np.array([0]),
            a_batch=heat.numpy()[None, None],
            s_batch=mask.numpy()[None, None].astype(float),
            device="cpu",
        )
        for metric, ours in (
            (quantus.RelevanceMassAccuracy, A.mass_in_mask),
            (quantus.RelevanceRankAccuracy, A.rank_accuracy),
            (quantus.PointingGame, A.pointing_game),
        ):
            theirs = metric(abs=True, normalise=False, disable_warnings=True)(**inputs)[0]
            assert float(ours(heat, mask)) == pytest.approx(float(theirs), abs=1e-6), metric.__name__
        pointing.append(A.pointing_game(heat, mask))
    assert True in pointing and False in pointing  # both outcomes were compared
