"""The charts of the results section, drawn here as inline SVG (nothing loads from
elsewhere): a bar per outcome (`chart`), and a bar per disposition, "What they said"
(`said_chart`); each bar with its label, number and share, so the colour is never needed to
read it.

    svg = chart(outcomes, "Outcomes of this run")       # Markup, labels and numbers included
    svg = said_chart(outcomes.dispositions, "What they said", shown=10)
"""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup, escape

from dialer.core.statuses import CallOutcome
from dialer.web import texts
from dialer.web.services.outcomes import Outcomes

# Okabe-Ito hues darkened to a contrast of at least 4.5:1 on white; `pending` is drawn as a
# dashed outline. Every bar also carries its label and number: the colour is never needed.
COLOURS = {
    CallOutcome.ANSWERED: "#00734f",
    CallOutcome.VOICEMAIL: "#0061a8",
    CallOutcome.NO_ANSWER: "#a84800",
    CallOutcome.BUSY: "#a3407a",
    CallOutcome.FAILED: "#333333",
    CallOutcome.PENDING: "#5c6670",
}
TEXT_COLOUR = "#1d2733"
SAID_COLOUR = "#0061a8"  # every disposition alike; "other" in the grey of `failed`
OTHER = "other"
_ROW, _LABEL, _BAR, _WIDTH = 30, 110, 360, 600  # chart geometry, in SVG units


def chart(outcomes: Outcomes, title: str) -> Markup:
    """A horizontal bar per outcome, in SPEC 10's order, each with its label on the left and
    its number and share on the right; the title is the chart's accessible name and the
    description reads every number out."""
    people = outcomes.people
    most = max(outcomes.counts.values(), default=0) or 1
    rows, said = [], []
    for i, outcome in enumerate(COLOURS):
        n = outcomes.counts.get(outcome, 0)
        share = f"{n / people:.0%}" if people else "0%"
        label = texts.OUTCOME_LABELS[outcome.value]
        said.append(f"{label} {n} ({share})")
        y = i * _ROW
        width = round(_BAR * n / most, 1)
        colour = COLOURS[outcome]
        if outcome is CallOutcome.PENDING:
            paint = f'fill="#ffffff" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"'
        else:
            paint = f'fill="{colour}"'
        rows.append(
            f'<g class="bar" data-outcome="{outcome.value}" data-count="{n}">'
            f'<text x="{_LABEL - 8}" y="{y + 19}" text-anchor="end">{label}</text>'
            f'<rect x="{_LABEL}" y="{y + 5}" width="{max(width, 1) if n else 0}" height="20" '
            f"{paint}/>"
            f'<text x="{_LABEL + width + 8}" y="{y + 19}">{n} ({share})</text></g>'
        )
    return _svg("outcome-chart", title, rows, said)


def said_chart(dispositions: Mapping[str, int], title: str, shown: int) -> Markup:
    """A horizontal bar per disposition, most first: the `shown` most frequent, the rest
    together as "other"; shares are of the people with a disposition."""
    bars = top_dispositions(dispositions, shown)
    total = sum(n for _, n in bars)
    most = max((n for _, n in bars), default=0) or 1
    rows, said = [], []
    for i, (value, n) in enumerate(bars):
        share = f"{n / total:.0%}" if total else "0%"
        words = texts.disposition_label(value)
        label = escape(words)
        said.append(f"{words} {n} ({share})")
        y = i * _ROW
        width = round(_BAR * n / most, 1)
        colour = COLOURS[CallOutcome.FAILED] if value == OTHER else SAID_COLOUR
        rows.append(
            f'<g class="bar" data-said="{escape(value)}" data-count="{n}">'
            f'<text x="{_LABEL - 8}" y="{y + 19}" text-anchor="end">{label}</text>'
            f'<rect x="{_LABEL}" y="{y + 5}" width="{max(width, 1) if n else 0}" height="20" '
            f'fill="{colour}"/>'
            f'<text x="{_LABEL + width + 8}" y="{y + 19}">{n} ({share})</text></g>'
        )
    return _svg("said-chart", title, rows, said)


def top_dispositions(dispositions: Mapping[str, int], shown: int) -> list[tuple[str, int]]:
    """The `shown` most frequent dispositions, then the rest added up as "other"."""
    named = [(v, n) for v, n in dispositions.items() if v != OTHER]  # "other" is the rest's
    ranked = sorted(named, key=lambda kv: (-kv[1], kv[0]))
    rest = sum(n for _, n in ranked[shown:]) + dispositions.get(OTHER, 0)
    return [*ranked[:shown], (OTHER, rest)] if rest else ranked[:shown]


def _svg(chart_id: str, title: str, rows: list[str], said: list[str]) -> Markup:
    """The bars as one accessible SVG: the title is its name, the description reads every
    number out."""
    height = len(rows) * _ROW + 4
    name = escape(title)
    return Markup(
        f'<svg id="{chart_id}" role="img" aria-label="{name}" '
        f'aria-describedby="{chart_id}-desc" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" font-size="14" '
        f'font-family="system-ui, sans-serif" fill="{TEXT_COLOUR}">'
        f'<title id="{chart_id}-title">{name}</title>'
        f'<desc id="{chart_id}-desc">{escape(", ".join(said))}</desc>'
        f"{''.join(rows)}</svg>"
    )
