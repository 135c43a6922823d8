"""A small SVG chart drawn on the server (the console works offline: no CDN, no JavaScript):
grouped bars per month with one line over them. Values are plain numbers; labels are escaped."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 20, 40
COLORS = ("#417690", "#79aec8", "#d9534f")


def bars_and_line(
    *,
    labels: Sequence[str],
    bars: dict[str, Sequence[Decimal]],
    line: tuple[str, Sequence[Decimal]] | None = None,
    title: str = "",
    value_format: str = "{:,.0f}",
) -> SafeString:
    series = list(bars.items())
    values = [v for _, vs in series for v in vs] + (list(line[1]) if line else [])
    top = max([Decimal(v) for v in values] + [Decimal(1)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar_w = slot * 0.8 / max(len(series), 1)

    def y(value: Decimal) -> float:
        return TOP + plot_h - float(Decimal(value) / top) * plot_h

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="tollgate-chart">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        value = top * step / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{escape(value_format.format(value))}</text>"
        )
    for index, label in enumerate(labels):
        x0 = LEFT + index * slot + slot * 0.1
        for number, (name, vs) in enumerate(series):
            value = Decimal(vs[index])
            parts.append(
                f'<rect x="{x0 + number * bar_w:.1f}" y="{y(value):.1f}" width="{bar_w:.1f}" '
                f'height="{TOP + plot_h - y(value):.1f}" fill="{COLORS[number % 2]}">'
                f"<title>{escape(name)} {escape(label)}: {escape(value_format.format(value))}</title></rect>"
            )
        parts.append(
            f'<text x="{LEFT + index * slot + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{escape(label)}</text>'
        )
    if line:
        points = " ".join(
            f"{LEFT + index * slot + slot / 2:.1f},{y(Decimal(value)):.1f}" for index, value in enumerate(line[1])
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{COLORS[2]}" stroke-width="2"/>')
    legend = [name for name, _ in series] + ([line[0]] if line else [])
    for number, name in enumerate(legend):
        color = COLORS[2] if line and number == len(legend) - 1 else COLORS[number % 2]
        x = LEFT + number * 160
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 5}" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text above is escaped
