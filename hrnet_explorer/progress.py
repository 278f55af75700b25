"""Progress of long work: one protocol, one counter per kind of job, one place that draws it.

The protocol is a plain callback, ``progress(done, total)`` (:data:`Progress`): ``done`` only grows and the
last call is ``(total, total)``. Everything that takes long accepts ``progress=None`` in that shape: the
attributions (their batches), ``image_report`` (its phases), ``analyze`` (its images). Who shows it is the
caller's business, and the work runs exactly the same without one.

Producers — code that does the work and reports it:

- :class:`Steps` counts the batches of one job whose size is known up front (an attribution's forwards):
  ``(0, total)`` at once, then each step to ``(total, total)`` once, in order.
- :class:`Phases` counts a job of several phases, where a phase is one step or a whole inner job (an
  attribution) reported through :attr:`Phases.batches`; the total grows as each inner job starts.

Consumers — code that shows it:

- :func:`progress_bar` (the CLI, the lab, the reports' command): a tqdm bar on stderr on a terminal,
  optionally a plain line every few seconds off one (logs of a torchrun job), else ``None``.
- :func:`fraction` (the app): the same callback as Gradio's ``progress(fraction, desc=…)``.

This module is core: it imports neither gradio nor plotly, and tqdm only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence

__all__ = ["Progress", "Steps", "Phases", "progress_bar", "fraction"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: ``done`` of ``total`` steps are finished (``0 <= done <= total``)."""


class Steps:
    """Real progress of one job of ``total`` batches: ``progress(done, total)`` as each batch completes — first
    ``(0, total)``, then every step up to ``(total, total)`` once, in order.

    A batch is one forward of the model (with its backward, for the gradient methods): :meth:`counted` wraps
    the forward function and reports a batch done when the next one begins (its backward has run by then);
    :meth:`finish` reports the last. Code that drives its own batches calls :meth:`advance`. Without a
    callback it does nothing, and :meth:`counted` returns the function itself: the computation is the same
    either way.
    """

    def __init__(self, progress: Progress | None, total: int, done: int = 0):
        """``done``: steps already finished before this run (a resumed training): the first call is
        ``(done, total)``."""
        self.progress, self.total, self.running = progress, max(1, int(total)), False
        self.done = min(max(0, int(done)), self.total)
        if progress is not None:
            progress(self.done, self.total)

    def advance(self) -> None:
        """One more batch is done (never past the total)."""
        if self.progress is not None and self.done < self.total:
            self.done += 1
            self.progress(self.done, self.total)

    def counted(self, forward: Callable) -> Callable:
        """``forward``, counting a batch done each time it is called again."""
        if self.progress is None:
            return forward

        def counted_forward(*args, **kwargs):
            if self.running:
                self.advance()
            self.running = True
            return forward(*args, **kwargs)

        return counted_forward

    def finish(self) -> None:
        """The job is done: report ``(total, total)`` unless it was reported already."""
        if self.progress is not None and self.done < self.total:
            self.done = self.total
            self.progress(self.total, self.total)


class Phases:
    """``progress(done, total)`` over the ``phases`` phases of a long job.

    A phase counts one step, or, when it runs an inner job with :attr:`batches` as that job's callback, the
    inner job's steps (the total grows when it starts and says how many). Call :meth:`next` when a phase is
    done. ``done`` only grows; the first call is ``(0, total)`` and the last ``(total, total)``.

    ``phases``: how many, or each phase's size where it is known up front (the steps of its inner job; 1 for
    a phase of one step or of a size known only when it starts). Where every size after the first is known,
    the total changes only at the first inner job's start, at ``done == 0``: the fraction done never falls.
    """

    def __init__(self, progress: Progress | None, phases: int | Sequence[int]):
        sizes = [1] * phases if isinstance(phases, int) else [max(1, int(n)) for n in phases]
        self.progress, self.sizes, self.phase, self.within, self.last = progress, sizes, 0, 0, None
        self._report()

    def _report(self) -> None:
        now = (sum(self.sizes[: self.phase]) + self.within, sum(self.sizes))
        if self.progress is not None and now != self.last:  # an inner job's (0, n) may repeat the last call
            self.last = now
            self.progress(*now)

    def next(self) -> None:
        """The current phase is done."""
        self.phase, self.within = self.phase + 1, 0
        self._report()

    @property
    def batches(self) -> Progress | None:
        """The callback for an inner job in the current phase (None without ``progress``)."""
        return self._batches if self.progress is not None else None

    def _batches(self, done: int, total: int) -> None:
        self.sizes[self.phase], self.within = total, done
        if done < total:
            self._report()  # its end is reported by next()


def fraction(progress: Callable[..., None], what: str | None = None, unit: str = "batch") -> Progress:
    """A :data:`Progress` callback that hands ``progress`` the fraction done, in [0, 1] — Gradio's
    ``progress(fraction, desc=…)``. With ``what``, also ``desc="{what}: {unit} {done}/{total}"`` ("IG: batch 3/8")."""

    def report(done: int, total: int) -> None:
        share = done / total if total else 1.0
        if what is None:
            progress(share)
        else:
            progress(share, desc=f"{what}: {unit} {done}/{total}")

    return report


@contextlib.contextmanager
def progress_bar(
    desc: str, unit: str = "batch", *, quiet: bool = False, every: float | None = None
) -> Iterator[Progress | None]:
    """A :data:`Progress` callback that shows the work on stderr, for the ``with`` block.

    On a terminal: a tqdm bar (``desc``, ``done/total`` and the rate in ``unit``/s; ``total`` may grow as the
    work learns its size). Off a terminal (logs, pipes, JSON consumers), with ``every`` seconds: a plain line
    ``desc: done/total units · rate units/s`` at most that often, and one at the end; without ``every``:
    nothing. ``quiet`` (``--quiet``): nothing either. "Nothing" is ``None``, so the work runs exactly as
    without a callback.
    """
    if quiet or (every is None and not sys.stderr.isatty()):
        yield None
        return
    if not sys.stderr.isatty():
        yield _LogLines(desc, unit, every)
        return
    from tqdm import tqdm

    with tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            if done >= total:
                bar.refresh()  # the end is shown even when it came within tqdm's mininterval

        yield progress


class _LogLines:
    """``progress_bar`` off a terminal: a line at most every ``every`` seconds, and the last one."""

    def __init__(self, desc: str, unit: str, every: float):
        self.desc, self.unit, self.every = desc, unit, every
        self.start, self.last = time.perf_counter(), float("-inf")

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done and (now - self.last >= self.every or done >= total):  # (0, total) says nothing yet
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            print(f"{self.desc}: {done:,}/{total:,} {self.unit}s · {rate:,.0f} {self.unit}s/s", file=sys.stderr)
