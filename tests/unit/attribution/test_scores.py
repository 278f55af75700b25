"""Ground-truth scores of attribution maps: exact on maps whose answer is known, clear errors on bad input."""

from __future__ import annotations

import pytest
import torch

from hrnet_explorer.attribution import mask_fraction, mass_in_mask, pointing_game, rank_accuracy


@pytest.fixture
def mask() -> torch.Tensor:
    m = torch.zeros(40, 50, dtype=torch.bool)
    m[10:20, 5:25] = True  # 200 of 2,000 pixels
    return m


def test_a_map_equal_to_the_mask_scores_perfectly(mask):
    heat = mask.float()
    assert mask_fraction(mask) == pytest.approx(0.1)
    assert mass_in_mask(heat, mask) == 1.0 and rank_accuracy(heat, mask) == 1.0 and pointing_game(heat, mask)


def test_a_map_outside_the_mask_scores_zero(mask):
    heat = (~mask).float()
    assert mass_in_mask(heat, mask) == 0.0 and rank_accuracy(heat, mask) == 0.0 and not pointing_game(heat, mask)


def test_known_mixtures(mask):
    heat = torch.where(mask, 3.0, -1.0)  # |relevance|: 200·3 inside, 1800·1 outside
    assert mass_in_mask(heat, mask) == pytest.approx(600 / 2400)
    assert mass_in_mask(heat, mask, positive=True) == 1.0  # only positive relevance counts
    heat = torch.zeros(40, 50)
    heat[mask] = 1.0
    heat[0, 0] = 5.0  # one outlier outside: the pointing game fails, rank accuracy loses one of 200
    assert not pointing_game(heat, mask) and rank_accuracy(heat, mask) == pytest.approx(199 / 200)


def test_random_maps_score_the_area_fraction(mask):
    generator = torch.Generator().manual_seed(0)
    masses = [mass_in_mask(torch.rand(40, 50, generator=generator), mask) for _ in range(200)]
    ranks = [rank_accuracy(torch.rand(40, 50, generator=generator), mask) for _ in range(200)]
    assert sum(masses) / 200 == pytest.approx(0.1, abs=0.005)
    assert sum(ranks) / 200 == pytest.approx(0.1, abs=0.01)


def test_a_blank_map_has_no_mass(mask):
    assert mass_in_mask(torch.zeros(40, 50), mask) == 0.0


@pytest.mark.parametrize(
    ("heat", "bad_mask", "message"),
    [
        (torch.ones(40, 50), torch.zeros(40, 50, dtype=torch.bool), "mask is empty"),
        (torch.ones(40, 50), torch.ones(40, 50, dtype=torch.bool), "whole image"),
        (torch.ones(40, 50), torch.ones(20, 25, dtype=torch.bool), "differ in size"),
        (torch.ones(40, 50), torch.ones(40, 50), "boolean"),
        (torch.full((40, 50), float("nan")), None, "NaN"),
        (torch.ones(3, 40, 50), None, "2-D"),
    ],
)
def test_bad_inputs_are_clear_errors(mask, heat, bad_mask, message):
    for score in (mass_in_mask, rank_accuracy, pointing_game):
        with pytest.raises(ValueError, match=message):
            score(heat, mask if bad_mask is None else bad_mask)
