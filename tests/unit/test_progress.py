"""hrnet_explorer.progress: the one progress protocol, its counters and its stderr bar."""

from __future__ import annotations

import sys

import pytest

from hrnet_explorer.progress import Phases, Steps, fraction, progress_bar


def test_steps_reports_each_batch_once_in_order():
    calls = []
    steps = Steps(lambda d, t: calls.append((d, t)), 3)
    forward = steps.counted(lambda v: v * 2)
    assert [forward(k) for k in range(3)] == [0, 2, 4]  # the wrapped forward computes the same
    steps.finish()
    steps.finish()  # a second finish reports nothing
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_steps_without_a_callback_changes_nothing():
    def forward():
        return 1

    steps = Steps(None, 4)
    assert steps.counted(forward) is forward
    steps.advance()
    steps.finish()
    assert steps.done == 0


def test_phases_grow_with_their_inner_jobs():
    calls = []
    phases = Phases(lambda d, t: calls.append((d, t)), 3)
    phases.next()
    inner = Steps(phases.batches, 2)
    inner.advance()
    inner.finish()
    phases.next()
    phases.next()
    assert calls == [(0, 3), (1, 3), (1, 4), (2, 4), (3, 4), (4, 4)]
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert Phases(None, 2).batches is None


def test_fraction():
    seen = []
    progress = fraction(seen.append)
    progress(1, 4)
    progress(0, 0)
    assert seen == [0.25, 1.0]
    described = []
    progress = fraction(lambda share, desc: described.append((share, desc)), "IG")
    progress(3, 8)
    assert described == [(3 / 8, "IG: batch 3/8")]


def test_bar_is_none_when_quiet_or_off_a_terminal(monkeypatch, capsys):
    with progress_bar("work") as progress:
        assert progress is None  # pytest's stderr is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar("work", quiet=True, every=1.0) as progress:
        assert progress is None
    assert capsys.readouterr().err == ""


def test_bar_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar("work", "image") as progress:
        for done, total in ((0, 3), (1, 3), (2, 5), (5, 5)):  # the total may grow
            progress(done, total)
    err = capsys.readouterr().err
    assert "work:" in err and "5/5" in err


@pytest.mark.parametrize("every", [0.0, 3600.0])
def test_log_lines_off_a_terminal(capsys, every):
    with progress_bar("w18", "image", every=every) as progress:
        for k in range(4):
            progress(k, 3)
    lines = capsys.readouterr().err.splitlines()
    assert all(line.startswith("w18: ") and "images/s" in line for line in lines)
    # every step with every=0; with an hour only the first step and the last
    assert [line.split()[1] for line in lines] == (["1/3", "2/3", "3/3"] if every == 0 else ["1/3", "3/3"])


def test_steps_of_a_resumed_job_start_where_it_stopped():
    calls = []
    steps = Steps(lambda done, total: calls.append((done, total)), 5, done=3)
    steps.advance()
    steps.advance()
    steps.advance()  # never past the total
    steps.finish()
    assert calls == [(3, 5), (4, 5), (5, 5)]
