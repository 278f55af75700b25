"""Selectivity maths on synthetic responses with known answers, the gratings' orientation convention measured on lab
images, and the lab check: orientation-tuned units exist, and their preferred orientation is their top examples' class
(CPU, 128 px, 50 lab images, 8 angles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_explorer import load_model
from hrnet_explorer.errors import InputError
from hrnet_explorer.lab import CLASSES, render
from hrnet_explorer.microscope.examples import rank
from hrnet_explorer.microscope.gratings import LAB_ORIENTATION, gratings
from hrnet_explorer.microscope.selectivity import class_selectivity, family_selectivity, orientation_tuning
from hrnet_explorer.microscope.stats import channel_stats
from hrnet_explorer.microscope.survey import survey, unit_tuning


def test_class_selectivity_known_answers():
    labels = np.array([0, 0, 1, 1, 2, 2])
    responses = np.stack(
        [
            [1, 1, 1, 1, 1, 1],  # the same for every class: 0
            [2, 2, 0, 0, 0, 0],  # class 0 only: 1
            [0, 0, 3, 1, 1, 1],  # means (0, 2, 1): (2 - 0.5) / (2 + 0.5) = 0.6, class 1
            [0, 0, 0, 0, 0, 0],  # silent: NaN
            [-5, -5, 1, 1, -1, -1],  # negative responses count as silence: means (0, 1, 0) → 1
        ],
        axis=1,
    )
    s = class_selectivity(responses, labels, 3)
    np.testing.assert_allclose(s.index, [0.0, 1.0, 0.6, np.nan, 1.0])
    assert s.preferred[[1, 2, 4]].tolist() == [0, 1, 1]
    np.testing.assert_allclose(s.means[2], [0, 2, 1])


def test_family_selectivity_known_answers():
    labels = np.array([0, 1, 2, 3])
    family_of = [0, 0, 1, 1]
    responses = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    s = family_selectivity(responses, labels, family_of)
    np.testing.assert_allclose(s.means, [[2, 0], [0, 1]])
    np.testing.assert_allclose(s.index, [1.0, 1.0])
    assert s.preferred.tolist() == [0, 1]


def test_selectivity_bad_inputs():
    with pytest.raises(InputError, match="at least one image"):
        class_selectivity(np.ones((2, 1)), [0, 0], 2)  # class 1 has no image
    with pytest.raises(InputError, match="labels"):
        class_selectivity(np.ones((2, 1)), [0, 1, 1], 2)
    with pytest.raises(InputError, match="N ≥ 1"):
        class_selectivity(np.ones((0, 3)), [], 2)
    with pytest.raises(InputError, match="in 0..1"):
        class_selectivity(np.ones((2, 1)), [0, 2], 2)
    with pytest.raises(InputError, match="3 angles"):
        orientation_tuning(np.ones((1, 2)), [0, 90])


def test_orientation_tuning_known_answers():
    angles = np.arange(8) * 22.5
    flat = np.ones((1, 8))
    cos2 = (np.cos(np.deg2rad(angles - 45.0)) ** 2)[None]  # cos² tuning peaked at 45°: OSI 0.5
    spike = (angles == 135.0).astype(float)[None]  # one orientation only: OSI 1
    near_180 = (1 + 0.5 * np.cos(2 * np.deg2rad(angles - 170.0)))[None]  # wraps around 0/180; OSI 0.25
    t = orientation_tuning(np.concatenate([flat, cos2, spike, near_180, np.zeros((1, 8))]), angles)
    np.testing.assert_allclose(t.osi[:3], [0.0, 0.5, 1.0], atol=1e-12)
    assert t.preferred[1] == pytest.approx(45.0) and t.preferred[2] == pytest.approx(135.0)
    assert t.preferred[3] == pytest.approx(170.0) and t.osi[3] == pytest.approx(0.25)
    assert np.isnan(t.osi[4])
    # [U, A, P, F]: the curve is the mean over periods and phases
    full = np.random.default_rng(0).random((2, 8, 3, 4))
    np.testing.assert_allclose(orientation_tuning(full, angles).curve, full.mean((2, 3)))


def test_gratings_follow_the_lab_orientation_convention():
    """Each lab stripe class correlates best with the grating at LAB_ORIENTATION (measured on rendered lab images)."""
    stripes = [CLASSES.index(c) for c in LAB_ORIENTATION]
    batch = render(list(range(40)), size=96)
    angles = np.arange(8) * 22.5
    g = gratings(angles, periods=np.linspace(3, 5, 9), phases=4, size=96)
    waves = (g.images[:, 0] - 0.5).reshape(8, -1, 96 * 96)  # [angle, period·phase, pixels]
    for i in range(40):
        label = int(batch.labels[i])
        if label not in stripes:
            continue
        region = (batch.images[i, 0] - batch.images[i, 0][batch.masks[i]].mean()) * batch.masks[i]
        energy = (waves @ region.reshape(-1)).square().sum(1)  # the grating's energy per angle
        assert angles[int(energy.argmax())] == LAB_ORIENTATION[CLASSES[label]]


def test_bad_grating_settings():
    for kwargs in ({"periods": (2.0,)}, {"phases": 0}, {"contrast": 0.6}, {"angles": []}):
        with pytest.raises(InputError):
            gratings(**kwargs)


@pytest.fixture(scope="module")
def lab():
    return load_model("lab", device="cpu", cache=False)


def test_the_lab_check_orientation_units_prefer_their_top_examples_class(lab):
    size, n = 128, 50
    maps = ["stage4.module0.fused1", "stage4.module0.fused2", "stage4.module0.fused3"]
    result = survey(lab, maps, images=n, size=size, stimuli=gratings(8, (3.0, 4.0, 5.0), 2, size=size))
    images = render(range(n), "test", size)
    cfg = lab.data_config
    x = (images.images - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    stats = channel_stats(lab, x, maps, labels=images.labels.numpy())
    matched = checked = 0
    for name in maps:
        units = result[name]
        top = rank(stats[name], 5, "max")
        for c in np.flatnonzero(units.orientation_selective):
            cls = CLASSES[int(np.bincount(images.labels.numpy()[top[c]], minlength=10).argmax())]
            if cls in LAB_ORIENTATION:
                checked += 1
                gap = abs((units.tuning.preferred[c] - LAB_ORIENTATION[cls] + 90) % 180 - 90)
                matched += gap <= 22.5
    assert checked >= 10, f"only {checked} orientation-selective units whose top examples are stripes"
    assert matched / checked >= 0.6, f"{matched}/{checked} match (chance is about 1/4)"
    rows = result.table()
    assert [r["map"] for r in rows] == maps and sum(r["orientation_selective"] for r in rows) >= checked


def test_survey_bad_inputs(lab):
    with pytest.raises(InputError, match="at least 10"):
        survey(lab, ["stage2.module0.fused0"], images=5, size=64)
    with pytest.raises(InputError, match="px"):
        survey(lab, ["stage2.module0.fused0"], images=10, size=64, stimuli=gratings(4, size=96))


def test_unit_tuning_is_the_surveys(lab):
    stimuli = gratings(4, (4.0,), 2, size=64)
    name = "stage3.module0.fused1"
    alone = unit_tuning(lab, name, stimuli=stimuli, size=64)
    surveyed = survey(lab, [name], images=10, size=64, stimuli=stimuli)[name].tuning
    np.testing.assert_allclose(alone.curve, surveyed.curve, rtol=1e-5)
    assert alone.curve.shape == (32, 4)
