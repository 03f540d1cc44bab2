"""The outcome chart of the results section, drawn here as inline SVG (nothing loads from
elsewhere): a bar per outcome, each with its label, number and share, so the colour is never
needed to read it.

    svg = chart(outcomes, "Outcomes of this run")       # Markup, labels and numbers included
"""

from __future__ import annotations

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
    height = len(COLOURS) * _ROW + 4
    name = escape(title)
    return Markup(
        f'<svg id="outcome-chart" role="img" aria-label="{name}" '
        f'aria-describedby="outcome-chart-desc" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" font-size="14" '
        f'font-family="system-ui, sans-serif" fill="{TEXT_COLOUR}">'
        f'<title id="outcome-chart-title">{name}</title>'
        f'<desc id="outcome-chart-desc">{escape(", ".join(said))}</desc>'
        f"{''.join(rows)}</svg>"
    )
