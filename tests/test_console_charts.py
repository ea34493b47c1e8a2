"""The Usage page's SVG charts (bot.console.charts), read back with an XML parser: geometry
follows the values, every series is in the legend, labels are escaped, empty input says so."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from bot.console.charts import MAX_DAYS, MAX_SERIES, bar_chart, line_chart
from bot.console.usage import Series

NS = "{http://www.w3.org/2000/svg}"
DAY = date(2026, 12, 1)
HOSTILE = '<script>alert("x")</script> & \x00\x1b]8;;evil\x07 "quoted"'


def days(n: int, start: date = DAY) -> list[date]:
    return [start + timedelta(days=k) for k in range(n)]


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.get("role") == "img" and root.get("width") == "100%"
    assert len([float(n) for n in root.get("viewBox", "").split()]) == 4
    return root


def all_of(root: ET.Element, tag: str) -> list[ET.Element]:
    return list(root.iter(f"{NS}{tag}"))


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in all_of(root, "text")]


def legend(root: ET.Element) -> list[str]:
    return [g.findtext(f"{NS}title") or "" for g in all_of(root, "g")]


def test_a_taller_bar_for_a_larger_value_stacked_in_series_order() -> None:
    slack = Series("slack", [(DAY, 3.0), (DAY + timedelta(1), 7.0), (DAY + timedelta(2), 0.0)])
    discord = Series("discord", [(DAY, 2.0)])
    root = parsed(bar_chart([slack, discord], title="Questions per day", unit="questions"))
    assert root.get("aria-label") == "Questions per day"
    assert root.findtext(f"{NS}title") == "Questions per day"
    bars = {
        r.findtext(f"{NS}title"): r
        for r in all_of(root, "rect")
        if r.find(f"{NS}title") is not None
    }
    assert set(bars) == {
        "slack, Dec 1, 2026: 3 questions",
        "slack, Dec 2, 2026: 7 questions",
        "discord, Dec 1, 2026: 2 questions",
    }  # no bar for a zero
    low = bars["slack, Dec 1, 2026: 3 questions"]
    high = bars["slack, Dec 2, 2026: 7 questions"]
    on_top = bars["discord, Dec 1, 2026: 2 questions"]

    def height(bar: ET.Element) -> float:
        return float(bar.get("height", "0"))

    assert height(high) > height(low) > height(on_top) > 0
    assert height(high) / height(low) == pytest.approx(7 / 3, rel=0.02)
    assert float(on_top.get("y", "0")) + height(on_top) == pytest.approx(
        float(low.get("y", "0")), abs=0.2
    )
    assert float(high.get("x", "0")) > float(low.get("x", "0"))  # later days to the right
    assert legend(root) == ["slack", "discord"]
    # Round ticks from 0 past the tallest stack (7), whole steps for whole counts; the unit.
    assert {"0", "2", "4", "6", "8", "questions", "Dec 1", "Dec 3"} <= set(texts(root))


def test_a_higher_point_for_a_larger_value_and_a_broken_line_over_missing_days() -> None:
    p50 = Series("p50", [(DAY, 900.0), (DAY + timedelta(1), 1200.0), (DAY + timedelta(3), 800.0)])
    p95 = Series("p95", [(DAY, 4000.0), (DAY + timedelta(1), 6500.0)])
    root = parsed(line_chart([p50, p95], title="Answer latency", unit="ms"))
    points = {c.findtext(f"{NS}title"): float(c.get("cy", "0")) for c in all_of(root, "circle")}
    assert len(points) == 5
    assert points["p95, Dec 2, 2026: 6,500 ms"] < points["p95, Dec 1, 2026: 4,000 ms"]
    assert points["p95, Dec 1, 2026: 4,000 ms"] < points["p50, Dec 2, 2026: 1,200 ms"]
    assert points["p50, Dec 2, 2026: 1,200 ms"] < points["p50, Dec 1, 2026: 900 ms"]
    assert points["p50, Dec 1, 2026: 900 ms"] < points["p50, Dec 4, 2026: 800 ms"]
    paths = [p.get("d", "") for p in all_of(root, "path")]
    assert [d.count("M") for d in paths] == [2, 1]  # Dec 3 has no p50: the line breaks there
    assert paths[0].split("M")[2].count("L") == 0  # Dec 4 stands alone
    assert legend(root) == ["p50", "p95"]
    assert {"0", "2k", "4k", "6k", "8k", "ms"} <= set(texts(root))


def test_shares_read_as_percentages_and_zero_is_drawn() -> None:
    abstained = Series("abstained", [(DAY, 0.25), (DAY + timedelta(1), 0.0)])
    downvoted = Series("👎", [(DAY, 0.0)])
    root = parsed(line_chart([abstained, downvoted], title="Share", unit="%"))
    assert {"0%", "10%", "20%", "30%"} <= set(texts(root))
    tips = {c.findtext(f"{NS}title") for c in all_of(root, "circle")}
    assert tips == {"abstained, Dec 1, 2026: 25%", "abstained, Dec 2, 2026: 0%",
                    "👎, Dec 1, 2026: 0%"}  # fmt: skip
    assert "No data yet" not in texts(root)


@pytest.mark.parametrize("draw", [line_chart, bar_chart])
def test_nothing_to_draw_says_no_data_yet(draw: Callable[..., str]) -> None:
    for series in ([], [Series("slack", [])], [Series("x", [(DAY, math.nan), (DAY, -1.0)])]):
        root = parsed(draw(series, title="Tokens per provider", unit="tokens"))
        assert "No data yet" in texts(root)
        assert not all_of(root, "rect") and not all_of(root, "circle")
        assert root.get("aria-label") == "Tokens per provider"
    zeros = parsed(bar_chart([Series("slack", [(d, 0.0) for d in days(5)])], title="Questions"))
    assert "No data yet" in texts(zeros)


def test_hostile_names_and_titles_are_escaped_text() -> None:
    series = [Series(HOSTILE, [(DAY, 5.0)]), Series("cloud", [(DAY, 1.0)])]
    for draw in (line_chart, bar_chart):
        svg = draw(series, title=HOSTILE, unit=HOSTILE)
        root = parsed(svg)  # still well-formed XML, control characters gone
        assert "<script" not in svg and "&lt;script&gt;" in svg
        assert not list(root.iter("script")) and not all_of(root, "script")
        assert all("\x00" not in t and "\x1b" not in t for t in texts(root))
        assert legend(root)[0].startswith('<script>alert("x")</script> & ]8;;evil "quoted"')
        assert root.get("aria-label", "").startswith("<script>")  # an attribute, not markup


def test_many_series_and_days_are_bounded() -> None:
    long_run = days(1000)
    many = [Series(f"s{n}", [(d, float(n + 1)) for d in long_run]) for n in range(MAX_SERIES + 8)]
    root = parsed(bar_chart(many, title="Many"))
    assert legend(root) == [f"s{n}" for n in range(MAX_SERIES)]
    assert len(all_of(root, "rect")) == MAX_SERIES * MAX_DAYS + MAX_SERIES  # bars + swatches
    tips = [r.findtext(f"{NS}title") or "" for r in all_of(root, "rect")]
    assert any(str(long_run[-1].day) in t for t in tips)  # the latest days are the ones kept
    assert not any(t.startswith("s0, Dec 1, 2026") for t in tips)
    assert float(parsed(bar_chart(many, title="Many")).get("viewBox", "").split()[3]) < 400


def test_a_series_without_points_is_in_the_legend_but_draws_no_line() -> None:
    root = parsed(line_chart([Series("local", [(DAY, 1.0)]), Series("cloud", [])], title="T"))
    assert legend(root) == ["local", "cloud"]
    assert [p.get("d", "") for p in all_of(root, "path")] == ["M240.0,48.0"]
    long_title = parsed(line_chart([Series("a", [(DAY, 1.0)])], title="x" * 500, show_title=True))
    assert max(len(t) for t in texts(long_title)) == 60
    assert len(long_title.get("aria-label", "")) == 200


@pytest.mark.parametrize("draw", [line_chart, bar_chart])
def test_the_title_is_drawn_only_when_asked_and_the_view_starts_below_it(
    draw: Callable[..., str],
) -> None:
    series = [Series("slack", [(DAY, 4.0)])]
    captioned, titled = (
        parsed(draw(series, title="Questions")),
        parsed(draw(series, title="Questions", show_title=True)),
    )
    assert "Questions" not in texts(captioned) and "Questions" in texts(titled)
    assert captioned.findtext(f"{NS}title") == titled.findtext(f"{NS}title") == "Questions"
    _, top, _, height = (float(n) for n in captioned.get("viewBox", "").split())
    assert top > 0 and titled.get("viewBox") == f"0 0 440 {top + height:g}"
