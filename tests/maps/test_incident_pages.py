"""The heatmap, hexbins and grids pages on a city with known incidents (no browser)."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import h3
import pytest
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.settings import Settings
from geo.store.incident_queries import IncidentFilter
from geo.store.map_grids import grid_figures
from geo.store.map_incidents import incident_points
from maps import pages
from maps.pages import hexbins
from tests.maps import incident_city as city

WINDOW = {"since": city.SINCE, "until": city.UNTIL}


@pytest.fixture
def built(session: Session) -> Session:
    city.build(session)
    session.commit()
    return session


def _render(session: Session, settings: Settings, kind: str, *, lang: str = "zh",
            **raw: Any) -> str:
    return pages.render(session, settings, kind, {**WINDOW, **raw}, lang=lang)


def _has(page: str, text: str) -> bool:
    """``text`` in the page as is or JSON-escaped (folium writes names as \\u escapes)."""
    return text in page or json.dumps(text)[1:-1] in page


def _heat(page: str) -> list[list[float]]:
    match = re.search(r"L\.heatLayer\(\s*(\[\]|\[\[.*?\]\])\s*,", page, re.S)
    return json.loads(match.group(1)) if match else []


def _frames(page: str) -> tuple[list[Any], list[str]]:
    data = re.search(r"new TDHeatmap\((.*?),\s*\{heatmapOptions", page, re.S)
    index = re.search(r"new L\.Control\.TimeDimensionCustom\((\[.*?\]),", page, re.S)
    assert data and index
    return ast.literal_eval(data.group(1)), ast.literal_eval(index.group(1))


def test_points_follow_the_filters(built: Session) -> None:
    tz = city.SH
    base = {"reported_from": city.MON_10.replace(day=1), "reported_to": city.MON_10.replace(
        month=7, day=1)}
    assert len(incident_points(built, IncidentFilter(**base))) == city.IN_WINDOW
    assert len(incident_points(built, IncidentFilter(**base, grid="C1"))) == 8
    assert len(incident_points(built, IncidentFilter(**base, categories=["C0101"]))) == 2
    assert len(incident_points(built, IncidentFilter(**base, statuses=["registered"]))) == 4
    hours = incident_points(built, IncidentFilter(**base), frame="hour", timezone=str(tz))
    assert hours.frame is not None and sorted(set(hours.frame.tolist())) == [10, 14, 22]
    weeks = incident_points(built, IncidentFilter(**base), frame="week",
                            week_origin=city.MON_10.replace(hour=0))
    assert weeks.frame is not None and sorted(weeks.frame.tolist()) == [0] * 7 + [1] * 3
    g12 = incident_points(built, IncidentFilter(**base, grid="G12"))
    assert g12.lon.tolist() == pytest.approx([city.G12[0]] * 3)


def test_heatmap_weights_are_cell_counts(built: Session, settings: Settings) -> None:
    page = _render(built, settings, "heatmap", resolution="10")
    heat = _heat(page)
    assert sum(w for _, _, w in heat) == city.IN_WINDOW
    by_cell = {h3.latlng_to_cell(lat, lon, 10): w for lat, lon, w in heat}
    assert by_cell[h3.latlng_to_cell(city.G11[1], city.G11[0], 10)] == 5
    assert by_cell[h3.latlng_to_cell(city.NOWHERE[1], city.NOWHERE[0], 10)] == 1
    assert _has(page, "网格边界") and '"code": "G11"' in page
    only = _heat(_render(built, settings, "heatmap", category="C0101", status="closed"))
    assert [w for _, _, w in only] == [1]
    assert sum(w for *_, w in _heat(_render(built, settings, "heatmap", grid="C1"))) == 8
    assert sum(w for *_, w in _heat(_render(built, settings, "heatmap", status="open"))) == 5


def test_heatmap_on_amap_is_shifted(built: Session, settings: Settings) -> None:
    plain = _heat(_render(built, settings, "heatmap", grid="G12"))
    shifted = _heat(pages.render(built, settings, "heatmap", {**WINDOW, "grid": "G12"},
                                 basemap="amap"))
    assert plain[0][2] == shifted[0][2]
    assert 200 < abs(shifted[0][1] - plain[0][1]) * 96_000 + abs(
        shifted[0][0] - plain[0][0]) * 111_000 < 1200


def test_heatmap_time_sliders(built: Session, settings: Settings) -> None:
    frames, labels = _frames(_render(built, settings, "heatmap", mode="hour"))
    assert len(frames) == 24 and labels[10] == "10:00–11:00"
    assert [len(f) for f in frames if f] == [2, 1, 1]  # 10h: G11 and nowhere; 14h; 22h
    assert max(w for f in frames for *_, w in f) == 1.0  # one scale, capped at 1
    frames, labels = _frames(_render(built, settings, "heatmap", mode="week", lang="en"))
    assert labels[0] == "week of 2024-05-27" and len(frames) == len(labels) == 5
    assert [len(f) for f in frames] == [0, 3, 1, 0, 0]
    weights = sorted(w for f in frames for *_, w in f)  # counts 1, 1, 3, 5 over their p98
    assert weights[-1] == 1.0 and weights[0] == weights[1] < weights[2] < 1.0


@pytest.mark.parametrize(("raw", "field", "valid"), [
    ({"category": "E0101,NOPE"}, "category", "codes from GET /api/v1/categories"),
    ({"grid": "G99"}, "grid", "the code of a current grid"),
    ({"status": "lost"}, "status", "open (every status not final)"),
    ({"since": "yesterday"}, "since", "ISO 8601"),
    ({"since": "2024-07-02"}, "since", "a moment before `until`"),
    ({"mode": "month"}, "mode", "static, week"),
    ({"resolution": "14"}, "resolution", "an integer 6-12"),
    ({"mode": "week", "since": "2020-01-01"}, "since", "at most 106 weeks"),
    # 106 weeks and 23 hours: 107 frames were drawn (the check dropped the part day)
    ({"mode": "week", "since": "2024-12-02", "until": "2026-12-14T23:00"}, "since",
     "at most 106 weeks"),
])
def test_heatmap_bad_filters(built: Session, settings: Settings, raw: dict[str, str],
                             field: str, valid: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "heatmap", **raw)
    assert err.value.field == field and valid in (err.value.valid or "")
    assert err.value.value == raw[field] or field == "category"


def test_a_time_outside_the_calendar_range_says_so(built: Session, settings: Settings) -> None:
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "heatmap", since="1960-01-01")
    assert err.value.field == "since" and "since 1960-01-01 is out of range" in err.value.message


def test_hexbins_counts_and_legend(built: Session, settings: Settings) -> None:
    page = _render(built, settings, "hexbins", resolution="9", scheme="equal_interval", k="3")
    counts = [int(c) for c in re.findall(r'"count": (\d+)', page)]
    assert sum(counts) == city.IN_WINDOW
    cell = h3.latlng_to_cell(city.G11[1], city.G11[0], 9)
    assert f'"cell": "{cell}"' in page
    assert 'id="pg-legend"' in page and _has(page, "等间距")
    for under in ("C1", "G11"):  # no street outline under a community or grid: none drawn
        page = _render(built, settings, "hexbins", grid=under)
        assert '"cell": ' in page
    bad = pytest.raises(InvalidInput)
    with bad as err:
        _render(built, settings, "hexbins", scheme="jenks")
    assert err.value.field == "scheme" and "quantiles" in (err.value.valid or "")


def test_hexbins_refuse_more_hexagons_than_a_page_draws(
        built: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    points = incident_points(built, IncidentFilter(
        reported_from=city.MON_10.replace(day=1), reported_to=city.MON_10.replace(month=7,
                                                                                  day=1)))
    lonlat = list(zip(points.lon, points.lat, strict=True))
    cells = {r: len({h3.latlng_to_cell(y, x, r) for x, y in lonlat}) for r in range(6, 13)}
    assert cells[12] > cells[6]
    monkeypatch.setattr(hexbins, "MAX_CELLS", cells[12] - 1)
    fits = max(r for r in range(6, 12) if cells[r] <= cells[12] - 1)
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "hexbins", resolution="12")
    assert (err.value.field, err.value.value) == ("resolution", 12)
    assert f"an integer 6-{fits} for these incidents" in (err.value.valid or "")
    assert f"{cells[12]:,} hexagons" in err.value.message
    page = _render(built, settings, "hexbins", resolution=str(fits))
    assert len(re.findall(r'"count": (\d+)', page)) == cells[fits]
    monkeypatch.setattr(hexbins, "MAX_CELLS", 0)
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "hexbins", resolution="6")
    assert err.value.valid == "fewer incidents (grid, category, since/until)"


@pytest.mark.parametrize("kind", ["heatmap", "hexbins", "grids"])
def test_a_page_says_when_no_incident_matches(built: Session, settings: Settings,
                                              kind: str) -> None:
    assert 'id="pg-empty"' not in _render(built, settings, kind)
    for lang, words in (("zh", "没有符合这些条件的事件"), ("en", "No incident matches")):
        page = _render(built, settings, kind, lang=lang, since="2020-01-01", until="2020-02-01")
        assert 'id="pg-empty"' in page and _has(page, words), (kind, lang)
        assert "k=0" not in page


def test_grid_figures(built: Session) -> None:
    f = grid_figures(built, ["G11", "G12", "G21", "C1", "CHI"], since=city.MON_10.replace(day=1),
                     until=city.MON_10.replace(month=7, day=1))
    g11, g12, g21, c1, chi = (f[c] for c in ("G11", "G12", "G21", "C1", "CHI"))
    assert (g11.reported, g11.open, g11.overdue, g11.closed) == (5, 3, 3, 2)
    assert g11.resolution_rate == pytest.approx(0.4) and g11.avg_close_h == pytest.approx(3)
    assert (g12.reported, g12.open, g12.closed, g12.duplicates) == (3, 0, 1, 1)
    assert g12.resolution_rate == pytest.approx(0.5) and g12.avg_close_h == pytest.approx(10)
    assert (g21.reported, g21.open, g21.overdue, g21.resolution_rate) == (1, 1, 0, 0.0)
    assert g21.avg_close_h is None
    assert (c1.reported, c1.open, c1.overdue, c1.closed) == (8, 3, 3, 3)
    assert c1.avg_close_h == pytest.approx(16 / 3)
    assert (chi.reported, chi.resolution_rate) == (0, None)
    assert [(p["name"], p["kind"]) for p in g11.responsible] == [
        ("员工WG11", "primary"), ("员工WB11", "backup")]
    only = grid_figures(built, ["G12"], since=city.MON_10.replace(day=1),
                        until=city.MON_10.replace(month=7, day=1), categories=["C0101"])
    assert only["G12"].reported == 2


def test_grids_page_popups(built: Session, settings: Settings) -> None:
    page = _render(built, settings, "grids", metric="resolution_rate")
    assert _has(page, "办结率") and _has(page, "平均办结时长（小时）")
    assert _has(page, "员工WG11 (A角), 员工WB11 (B角)")
    assert '"resolution_rate": "40.0%"' in page and '"avg_close_h": "3.0"' in page
    assert '"overdue": 3' in page
    en = _render(built, settings, "grids", level="community", lang="en")
    assert "resolution rate" in en and "average time to close (h)" in en
    assert '"code": "C1"' in en and '"reported": 8' in en and '"code": "G11"' not in en
    assert "状态" not in page  # no status row: the figures count every status
    assert "未办结" in _render(built, settings, "heatmap", status="open")
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "grids", status="open")
    assert err.value.field == "status" and "every status" in (err.value.valid or "")
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "dispatch")
    assert err.value.field == "incident_id" and err.value.value is None
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "grids", metric="speed")
    assert err.value.field == "metric" and "resolution_rate" in (err.value.valid or "")


def test_pages_with_no_incident_in_the_window(built: Session, settings: Settings) -> None:
    empty = {"since": "2030-01-01", "until": "2030-02-01"}
    for kind in ("heatmap", "hexbins", "grids"):
        page = pages.render(built, settings, kind, empty)
        assert "L.map(" in page and "<td>0</td>" in page, kind
    assert _heat(pages.render(built, settings, "heatmap", empty)) == []
    hour = pages.render(built, settings, "heatmap", {**empty, "mode": "hour"})
    assert _frames(hour)[0] == [[]] * 24


def test_the_grids_page_says_it_takes_no_status(built: Session, settings: Settings) -> None:
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "grids", status="open")
    assert err.value.field == "status" and "does not take" in err.value.message
    assert err.value.value == "open"
    assert "every status" in (err.value.valid or "") and "metric" in (err.value.valid or "")


def test_the_grids_page_refuses_a_level_not_below_its_grid(built: Session,
                                                           settings: Settings) -> None:
    """The streets under a community: none, which the page read as "no incident matches"."""
    with pytest.raises(InvalidInput) as err:
        _render(built, settings, "grids", level="street", grid="C1")
    assert (err.value.field, err.value.value, err.value.valid) == ("level", "street",
                                                                   "community, grid")
    assert '"code": "G11"' in _render(built, settings, "grids", level="grid", grid="C1")
    assert '"code": "C1"' in _render(built, settings, "grids", level="community", grid="C1")


def test_the_grids_page_of_one_finest_grid_shows_that_grid(built: Session,
                                                           settings: Settings) -> None:
    for given in ({}, {"level": "grid"}):  # the default, left out or spelt out
        page = _render(built, settings, "grids", grid="G11", **given)
        assert '"code": "G11"' in page and '"code": "G12"' not in page
