"""`aiinfra cost --chart`: the monthly cost by component as bars, rendered by the real `dot`, read from the SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from aiinfra.cli import main
from aiinfra.cost import BAR_WIDTH, CEILING_COLOR, FLOOR_COLOR, by_component, chart, estimate_graph
from aiinfra.diagram.render import render

SVG = "{http://www.w3.org/2000/svg}"


def _width(polygon: ET.Element) -> float:
    xs = [float(p.split(",")[0]) for p in (polygon.get("points") or "").split()]
    return max(xs) - min(xs)


def test_bars_follow_the_estimate_and_unpriced_kinds_are_listed(stack_graph: Any) -> None:
    graph = stack_graph("prod")
    result = estimate_graph(graph)
    svg = ET.fromstring(render(chart(graph, result), "svg"))
    text = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    floors, ceilings = by_component(graph, result), by_component(graph, result, "ceiling")
    for component, ceiling in ceilings.items():
        assert f"{component}" in text and f"${floors[component]:,.0f} .. ${ceiling:,.0f}" in text
    assert f"floor ${result.total:,.0f}" in text and f"ceiling ${result.ceiling:,.0f}" in text
    for item in result.unpriced:
        assert item.resource.type.rsplit(":", 1)[-1] in text and item.reason in text
    bars = {color: [_width(p) for p in svg.iter(f"{SVG}polygon") if p.get("fill") == color]
            for color in (FLOOR_COLOR, CEILING_COLOR)}
    ordered = sorted(ceilings.values(), reverse=True)
    assert len(bars[CEILING_COLOR]) == len(ordered) and len(bars[FLOOR_COLOR]) == len(ordered)
    assert bars[CEILING_COLOR][0] == pytest.approx(BAR_WIDTH, abs=2)
    for width, ceiling in zip(bars[CEILING_COLOR], ordered):
        assert width == pytest.approx(max(1, BAR_WIDTH * ceiling / ordered[0]), abs=2)


def test_cli_chart_prints_svg(stack_graph: Any, monkeypatch: pytest.MonkeyPatch,
                              capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    import aiinfra.cost as cost

    monkeypatch.setattr(cost, "synthesize_from_args", lambda args: stack_graph(args.stack))
    assert main(["cost", "--stack", "prod", "--chart"]) == 0
    root = ET.fromstring(capsysbinary.readouterr().out)
    assert root.tag == f"{SVG}svg" and any("unpriced" in (t.text or "") for t in root.iter(f"{SVG}text"))


def test_chart_without_dot_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["cost", "--stack", "prod", "--chart"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Graphviz `dot`" in err


def test_chart_and_json_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["cost", "--stack", "prod", "--chart", "--json"])
    assert caught.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
