"""Small pure helpers shared by the views: colours, the scoped CSS, and the error guard."""

from __future__ import annotations

import html
from typing import Any, Callable, Mapping


def text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (``#RRGGBB``).

    >>> text_color("#0072B2"), text_color("#E69F00")
    ('#ffffff', '#111111')
    """
    value = background.lstrip("#")
    if len(value) != 6:
        return "#111111"
    r, g, b = (int(value[i:i + 2], 16) / 255 for i in (0, 2, 4))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    # WCAG contrast against white vs against near-black: pick the larger
    return "#ffffff" if (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.0566) else "#111111"


def chip(label: str, color: str) -> str:
    """A variant's label as a coloured badge (HTML)."""
    return (f"<span class='pl-chip' style='background:{color};color:{text_color(color)}'>"
            f"{html.escape(str(label))}</span>")


def css_block(scope: str, colors: Mapping[str, str]) -> str:
    """The grid's stylesheet, scoped to one view (``.{scope}``) so two grids never clash."""
    s = f".{scope}"
    rules = [
        f"{s} .pl-chip{{display:inline-block;min-width:1.4em;text-align:center;border-radius:4px;"
        "padding:1px 7px;margin-right:6px;font-weight:700}",
        f"{s} .pl-title{{font-size:15px;display:flex;align-items:center;gap:4px;flex-wrap:wrap}}",
        f"{s} .pl-vs{{margin:0 10px;color:#777}}",
        f"{s} .pl-progress{{font-size:14px;margin-right:12px}}",
        f"{s} .pl-counts{{color:#555}}",
        f"{s} .pl-header{{border-bottom:1px solid #ddd;padding-bottom:6px;margin-bottom:6px}}",
        f"{s} .pl-row{{border-bottom:1px solid #e3e3e3}}",
        f"{s} .pl-row-no{{font-weight:700;color:#555;margin-right:8px}}",
        f"{s} .pl-card{{border-radius:6px;border:2px solid #ccc}}",
        f"{s} .pl-card-head{{display:flex;align-items:center;font-size:12px;color:#333;margin:4px 0}}",
        f"{s} .pl-out{{white-space:pre-wrap;line-height:1.45;font-size:13px;color:#111}}",
        f"{s} .pl-pending{{color:#888;font-style:italic}}",
        f"{s} .pl-error{{color:#b00020}}",
        f"{s} .pl-meta{{font-size:11px;color:#777}}",
        f"{s} .pl-inputs{{font-size:12px;padding-right:6px}}",
        f"{s} .pl-var{{margin-bottom:6px;line-height:1.35}}",
        f"{s} .pl-var span, {s} .pl-msg span{{display:block;font-size:10px;text-transform:uppercase;"
        "letter-spacing:.04em;color:#888}",
        f"{s} .pl-expected{{color:#666}}",
        f"{s} .pl-msg{{white-space:pre-wrap;font-size:12px;margin:4px 8px 6px 0;line-height:1.35}}",
        f"{s} .pl-selected{{outline:3px solid #222;outline-offset:1px;font-weight:700}}",
        f"{s} .pl-issue.pl-selected select{{background:#fff3cd;font-weight:700}}",
        f"{s} .pl-message{{font-size:13px}}",
    ]
    for which, color in colors.items():
        rules.append(f"{s} .pl-side-{which}{{border-color:{color};background:{color}0f}}")
        rules.append(f"{s} .pl-prompt-{which}{{border-left:4px solid {color};padding-left:8px}}")
    return "<style>" + "\n".join(rules) + "</style>"


def guard(view: Any, handler: Callable[..., Any]) -> Callable[..., None]:
    """Wrap a widget callback so an error shows in the view instead of the browser's log."""

    def run(*args: Any) -> None:
        try:
            handler(*args)
        except Exception as exc:  # shown to the user; nothing half-written (the store validates first)
            view.show_error(exc)

    return run
