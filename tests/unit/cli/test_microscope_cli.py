"""``hrnet-explorer microscope DIR --map M``: a map's units from an analyze run as one HTML page; bad input one line."""

from __future__ import annotations

import pytest

from hrnet_explorer.cli import main
from hrnet_explorer.cli.microscope import parse_channels
from hrnet_explorer.errors import InputError

MAP = "stage2.module0.fused0"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("microscope") / "run"
    args = ["analyze", "lab:10", "--out", str(out), "--input-size", "64", "-b", "5", "--workers", "0", "-q"]
    assert main([*args, "--unit-map", MAP]) == 0
    return out


def test_microscope_writes_a_page_of_the_runs_units(run, tmp_path, capsys):
    html = tmp_path / "html"
    args = ["microscope", str(run), "--map", MAP, "--channels", "0-1,5", "--k", "2", "--crop", "32"]
    args += ["--steps", "2", "--size", "64", "--cache", str(tmp_path / "cache"), "--out", str(html), "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == [f"{MAP} c0", f"{MAP} c1", f"{MAP} c5"]
    page = html / f"{MAP}.html"
    assert f"wrote {page}" in out and page.read_text().count("class=ex") == 6
    assert (html / "index.html").is_file() and len(list((tmp_path / "cache").rglob("*.png"))) == 3


def test_compile_is_its_own_cache_entry(run, tmp_path, eager_compile):
    args = ["microscope", str(run), "--map", MAP, "--channels", "2", "--k", "1", "--steps", "2", "--size", "64"]
    args += ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "html"), "-q"]
    assert main(args) == 0 and main([*args, "--compile"]) == 0
    assert len({png.parent for png in (tmp_path / "cache").rglob("*.png")}) == 2  # two settings keys


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--map", "stage4.module0.fused0"], "--unit-map stage4.module0.fused0"),  # not in the run
        (["--map", MAP, "--channels", "0-16"], "out of range"),
        (["--map", MAP, "--channels", "a"], "--channels"),
        (["--map", MAP, "--size", "50"], "multiple of 32"),
    ],
)
def test_bad_requests_are_one_line(run, capsys, extra, words):
    assert main(["microscope", str(run), *extra, "--steps", "1", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_no_run_is_one_line(tmp_path, capsys):
    assert main(["microscope", str(tmp_path), "--map", MAP]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_parse_channels():
    assert parse_channels("0-3,7") == [0, 1, 2, 3, 7] and parse_channels(None) is None
    with pytest.raises(InputError):
        parse_channels("1-")
