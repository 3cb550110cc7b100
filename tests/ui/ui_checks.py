"""Reading what a chart drew, for browser tests: canvas pixels, tick labels, tooltips."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

_COUNT_PIXELS = """(canvas, [rgb, tolerance, minAlpha]) => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const d = Math.abs(data[i] - rgb[0]) + Math.abs(data[i + 1] - rgb[1]) + Math.abs(data[i + 2] - rgb[2]);
    if (data[i + 3] >= minAlpha && d <= tolerance) n++;
  }
  return n;
}"""


def hex_rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def colour_pixels(card: Any, colour: str, tolerance: int = 36, min_alpha: int = 200) -> int:
    """How many canvas pixels of the chart are (nearly) ``colour``, at least that opaque
    (the canvas is transparent: translucent fills keep their colour, with a lower alpha)."""
    return card.locator("canvas").evaluate(_COUNT_PIXELS, [hex_rgb(colour), tolerance, min_alpha])


def ticks(card: Any, axis: str) -> list[str]:
    """The tick labels the chart drew on ``axis`` ("x" or "y")."""
    return json.loads(card.get_attribute(f"data-{axis}-ticks"))


def hover_rows(card: Any, x: float, y: float) -> tuple[str, list[dict]]:
    """Hover the plot at (x, y) px; the tooltip's heading and rows."""
    card.locator(".u-over").hover(position={"x": x, "y": y})
    expect(card.locator(".chart-tooltip")).to_be_visible()
    head = card.locator(".chart-tooltip .tooltip-head").inner_text()
    rows = card.locator(".chart-tooltip .tooltip-row").evaluate_all(
        """rows => rows.map(r => ({label: r.dataset.label, x: Number(r.dataset.x),
             value: r.querySelector('.tooltip-value').textContent,
             at: r.querySelector('.tooltip-at')?.textContent ?? null}))"""
    )
    return head, rows


def drag_zoom(page: Any, card: Any, start: float, width: float) -> None:
    """Drag over the plot from ``start`` to ``start + width`` (fractions of its width)."""
    box = card.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (start + width), y, steps=6)
    page.mouse.up()


def is_series_read(request: Any) -> bool:
    """Whether a request is the UI's batched series read (``POST /api/v1/series/read``)."""
    return request.method == "POST" and request.url.split("?")[0].endswith("/api/v1/series/read")


class SeriesReads:
    """Every batched series read a page makes, as its JSON body (``max_points``, ``start``,
    ``end``, ``times``, ``series``: the lines asked for)."""

    def __init__(self, page: Any) -> None:
        self.bodies: list[dict] = []
        page.on(
            "request", lambda r: self.bodies.append(r.post_data_json) if is_series_read(r) else None
        )

    def lines(self, key_prefix: str = "") -> list[dict]:
        """The lines asked for (each with its request's options), in order."""
        return [
            {**{k: v for k, v in body.items() if k != "series"}, **line}
            for body in self.bodies
            for line in body["series"]
            if line.get("key", "").startswith(key_prefix)
        ]

    def clear(self) -> None:
        self.bodies.clear()


def series_answer(response: Any, key: str) -> dict:
    """The answer for one key in a batched read's response, with the request's options."""
    body = response.request.post_data_json
    series = [s for s in response.json()["series"] if s["key"] == key]
    assert len(series) == 1, series
    return {**{k: v for k, v in body.items() if k != "series"}, **series[0]}
