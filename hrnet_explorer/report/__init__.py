"""Reports of results: self-contained HTML pages, and plain-data summaries.

- :func:`dataset_report` (:mod:`.dataset`): the page of a whole ``analyze`` run.
- :func:`image_report` (:mod:`.image`): every figure of the app for one image, the trace beside it
  (:func:`~hrnet_explorer.export.save_trace`).
- :func:`render_page` (:mod:`.page`): one page of sections, Plotly's JavaScript inline, so that it opens offline.
- :func:`trace_summary` (:mod:`.summary`): a trace as plain data (the CLI's ``--json``).

Importing the package imports no plotly: it is imported where a page is drawn (``analyze`` and the CLI run
without it). The command line's ``report`` (:mod:`hrnet_explorer.cli.report`) calls the two report functions.
"""

from __future__ import annotations

from .dataset import dataset_report
from .image import image_report
from .page import render_page
from .summary import trace_summary

__all__ = ["dataset_report", "image_report", "render_page", "trace_summary"]
