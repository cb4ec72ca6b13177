"""The viewer page: one self-contained HTML file (inline CSS, SVG charts, a little vanilla JS).

Candidate text is data, never markup: it travels as JSON inside a ``<script type=
"application/json">`` block (every ``<`` escaped, ``data.to_json``) and the script puts it on
the page with ``textContent`` only. Charts are drawn here as SVG from escaped strings and numbers.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from judgekit.view.data import to_json

W, H, PAD = 320, 150, 28


def _svg(title: str, body: list[str]) -> str:
    return (
        f'<figure><svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">'
        f"<title>{html.escape(title)}</title>{''.join(body)}</svg>"
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
    )


def _bars(
    title: str,
    names: Sequence[str],
    values: Sequence[float],
    intervals: Sequence[tuple[float, float]] | None = None,
    top: float | None = None,
) -> str:
    """Vertical bars (optionally with interval whiskers), y from 0 to ``top``."""
    digits = 2 if top is not None else 0  # rates, else counts
    top = top or max([*values, 1e-9])
    n = max(len(values), 1)
    step = (W - 2 * PAD) / n
    y = lambda v: H - PAD - (H - 2 * PAD) * v / top  # noqa: E731
    body = [f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>']
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        x = PAD + i * step
        body.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{y(value):.1f}" width="{step * 0.7:.1f}" '
            f'height="{H - PAD - y(value):.1f}" fill="#4a78b5"/>'
            f'<text x="{x + step / 2:.1f}" y="{H - PAD + 14}" font-size="10" '
            f'text-anchor="middle">{html.escape(name)}</text>'
            f'<text x="{x + step / 2:.1f}" y="{y(value) - 3:.1f}" font-size="9" '
            f'text-anchor="middle">{value:.{digits}f}</text>'
        )
        if intervals is not None:
            low, high = intervals[i]
            body.append(
                f'<line x1="{x + step / 2:.1f}" x2="{x + step / 2:.1f}" y1="{y(low):.1f}" '
                f'y2="{y(high):.1f}" stroke="#222" stroke-width="1.5"/>'
            )
    return _svg(title, body)


def _histogram(run: Mapping[str, Any]) -> str:
    scores = [e["score"] for e in run["items"] if e["score"] is not None]
    low, high = min(run["values"]), max(run["values"])
    bins = 10
    counts = [0] * bins
    for s in scores:
        counts[min(int((s - low) / (high - low) * bins), bins - 1)] += 1
    names = [f"{low + (high - low) * (i + 0.5) / bins:.2f}" for i in range(bins)]
    what = "P(A preferred)" if run["mode"] == "pairwise" else "expected score"
    return _bars(f"Score distribution ({what}, {len(scores)} valid items)", names, counts)


def _label_rates(run: Mapping[str, Any]) -> str:
    """The run summary's verdict rates: shares of all items, invalid items a bar of their own."""
    rates = run["rates"]
    title = "Win rates" if run["mode"] == "pairwise" else "Label rates"
    return _bars(
        f"{title} with 95% CIs (of all {len(run['items'])} items, invalid included)",
        list(rates),
        [r[0] for r in rates.values()],
        [(r[1], r[2]) for r in rates.values()],
        top=1.0,
    )


def _variant_agreement(run: Mapping[str, Any]) -> str:
    """Per variant: share of items where its label matches the humans' (else the final verdict)."""
    humans = [e for e in run["items"] if e["human"] is not None]
    values = []
    for variant in run["variants"]:
        if humans:
            agree = sum(e["variant_disagrees"].get(variant) is False for e in humans)
        else:
            agree = sum(e["variant_labels"].get(variant) == e["label"] for e in run["items"])
        values.append(agree / max(len(humans or run["items"]), 1))
    whom = f"human labels ({len(humans)} items)" if humans else "the final verdict"
    return _bars(f"Per-variant agreement with {whom}", run["variants"], values, top=1.0)


def render_page(model: Mapping[str, Any]) -> str:
    """The whole HTML document for a page model (``data.page_model``)."""
    runs = model["runs"]
    title = " vs ".join(f"{r['rubric']} · {r['judge']}" for r in runs)
    charts = "".join(
        f'<section class="charts"><h3>{html.escape(r["path"])}</h3>'
        + _histogram(r)
        + _label_rates(r)
        + _variant_agreement(r)
        + "</section>"
        for r in runs
    )
    notes = "".join(f"<p class=note>{html.escape(n)}</p>" for r in runs for n in r["notes"])
    asset = resources.files("judgekit.view")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>judgekit view: {html.escape(title)}</title>"
        f"<style>{asset.joinpath('viewer.css').read_text()}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{notes}<div id=charts>{charts}</div>"
        "<div id=controls><label><input type=checkbox id=f-invalid> invalid</label>"
        "<label><input type=checkbox id=f-flip> flipped with order</label>"
        "<label><input type=checkbox id=f-human> disagrees with humans</label>"
        "<label>sort <select id=sort><option value=id>id</option>"
        "<option value=margin>uncertain: closest to the decision boundary</option>"
        "<option value=entropy>uncertain: highest entropy</option>"
        "<option value=change>biggest change between runs (second - first)</option>"
        "</select></label>"
        "<span id=meta-filters></span>"
        "<span id=count></span></div>"
        "<div id=main><table id=list><thead></thead><tbody></tbody></table>"
        "<div id=detail><p class=hint>Click an item to see it.</p></div></div>"
        f'<script type="application/json" id=data>{to_json(model)}</script>'
        f"<script>{asset.joinpath('viewer.js').read_text()}</script></body></html>\n"
    )
