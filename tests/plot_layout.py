"""What a reader sees go wrong in a rendered Plotly figure, measured in the browser's DOM: text cut off at the
figure's edge, texts drawn over each other (titles, subplot titles, tick and bar labels, heatmap cell numbers,
legend and colour bar text), text under the app's label of the plot, a colour bar that eats the width or covers a
plot. For the browser tests (tests/system/test_browser.py)."""

from __future__ import annotations

# Bounding boxes of every text of one plot, in page pixels; a problem is a line of text saying what and where.
LAYOUT_PROBLEMS_JS = r"""
(root) => {
  const svg = root.querySelector(".main-svg");
  const box = svg.getBoundingClientRect();
  const kinds = [
    [".gtitle", "title"], ["g.annotation text", "annotation"], [".g-xtitle text, .g-ytitle text", "axis title"],
    [".xtick text, .ytick text", "tick label"], ["text.bartext", "bar label"], [".heatmaplayer text", "cell text"],
    [".legendtext", "legend"], [".colorbar text", "colour bar text"],
  ];
  const items = [];
  for (const [query, kind] of kinds) {
    for (const el of root.querySelectorAll(query)) {
      const r = el.getBoundingClientRect();
      if (r.width >= 1 && r.height >= 1) items.push({kind, text: (el.textContent || "").slice(0, 40), r});
    }
  }
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  const problems = [];
  for (const it of items) {
    const r = it.r;
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
      problems.push(`cut off: ${it.kind} '${it.text}' spans ${Math.round(r.left - box.left)}..`
        + `${Math.round(r.right - box.left)} px of ${Math.round(box.width)}`);
  }
  for (let i = 0; i < items.length; i++)
    for (let j = i + 1; j < items.length; j++)
      if (overlap(items[i].r, items[j].r))
        problems.push(`overlap: ${items[i].kind} '${items[i].text}' × ${items[j].kind} '${items[j].text}'`);
  const block = root.closest(".block");
  const label = block && block.querySelector('[data-testid="block-label"]');
  if (label) for (const it of items)
    if (overlap(label.getBoundingClientRect(), it.r)) problems.push(`under the plot's label: ${it.kind} '${it.text}'`);
  const plots = [...root.querySelectorAll(".draglayer .nsewdrag, .sankey")].map(e => e.getBoundingClientRect());
  for (const bar of root.querySelectorAll("g.colorbar")) {
    const r = bar.getBoundingClientRect();
    if (r.width < 1) continue;
    if (r.height > r.width && r.width > 0.2 * box.width)
      problems.push(`colour bar ${Math.round(r.width)} px wide of ${Math.round(box.width)}`);
    if (plots.some(p => overlap(p, r))) problems.push("colour bar over a plot");
  }
  const left = Math.min(...plots.map(r => r.left)), right = Math.max(...plots.map(r => r.right));
  const share = plots.length ? (right - left) / box.width : 0;
  if (share < 0.4) problems.push(`the plots take ${Math.round(100 * share)} % of the width`);
  const columns = new Set(plots.map(r => Math.round(r.left))).size;
  return {problems, width: box.width, columns};
}
"""


def layout_of(page, elem_id: str) -> dict:
    """{problems: [...], width: px, columns: how many distinct plot columns} of the figure in ``#elem_id``, once
    plotly.js has finished sizing it (its width stable)."""
    plot = page.locator(f"#{elem_id} .js-plotly-plot").first
    plot.locator(".main-svg").first.wait_for()
    width = None
    for _ in range(20):
        page.wait_for_timeout(150)
        now = plot.evaluate("p => p.querySelector('.main-svg').getBoundingClientRect().width")
        if now == width:
            break
        width = now
    return plot.evaluate(LAYOUT_PROBLEMS_JS)
