"""Track inputs that used to be a 500, stored at the wrong time or as a wrong point.

The city and helpers are those of ``test_tracks_api`` (grids G1, G2; patrol workers
P-1, P-2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import Result

from tests.api.test_tracks_api import _gpx, city, post, scalar, walk

Auth = Callable[[str], dict[str, str]]
__all__ = ["city"]  # fixture used here


def _upload(client: TestClient, auth: Auth, worker: int, name: str, content: str) -> Any:
    return client.post("/api/v1/tracks/import", data={"worker_id": str(worker)},
                       files=[("file", (name, content, "text/plain"))],
                       headers=auth("dispatcher"))


def test_a_gpx_time_with_an_impossible_offset(client: TestClient, auth: Auth,
                                              city: dict[str, int]) -> None:
    points = walk(3)
    points[1]["t"] = "2024-05-01T08:30:00+25:00"
    answer = _upload(client, auth, city["P-1"], "odd.gpx", _gpx(points))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "odd.gpx[1].t"


def test_a_plt_time_with_an_offset_is_applied(client: TestClient, auth: Auth, session: Session,
                                              city: dict[str, int]) -> None:
    header = "Geolife trajectory\nWGS 84\nAltitude is in Feet\nReserved 3\n0,2,255,My Track,0," \
             "0,2,8421376\n0\n"
    rows = "".join(f"26.085,{119.305 + k * 0.0001},0,0,45000,2024-05-01,08:00:{k:02d}+08:00\n"
                   for k in range(3))
    answer = _upload(client, auth, city["P-1"], "walk.plt", header + rows)
    assert answer.status_code == 201, answer.text
    first = scalar(session, "SELECT min(t) FROM track_point WHERE worker_id = :w",
                   w=city["P-1"])
    assert first.isoformat().startswith("2024-05-01T00:00:00")  # 08:00+08:00 in UTC


def test_an_empty_file_among_several_is_named(client: TestClient, auth: Auth,
                                              city: dict[str, int]) -> None:
    answer = client.post("/api/v1/tracks/import", data={"worker_id": str(city["P-1"])},
                         files=[("file", ("hdr.csv", "lon,lat,t\n", "text/csv"))],
                         headers=auth("dispatcher"))
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "hdr.csv"


def test_json_booleans_are_not_coordinates_or_times(client: TestClient, auth: Auth,
                                                    city: dict[str, int]) -> None:
    for key in ("lon", "t"):
        point = {**walk(1)[0], key: True}
        answer = post(client, auth, {"worker_id": city["P-1"], "points": [point]}, status=422)
        assert key in answer["detail"]["field"]


def test_projected_fixes_outside_their_systems_area_are_refused(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    # Fuzhou in UTM 50N with easting and northing swapped: it converts to a place in the
    # Pacific, 18 degrees east of the zone; it was stored there
    point = {**walk(1)[0], "lon": 2888102, "lat": 729461}
    answer = post(client, auth, {"worker_id": city["P-1"], "crs": "EPSG:32650",
                                 "points": [point]}, status=422)
    assert answer["detail"]["field"] == "points[0]"
    assert "EPSG:32650 (lon 114 to 120" in answer["detail"]["valid"]
    assert scalar(session, "SELECT count(*) FROM track_point") == 0


def test_json_integers_of_hundreds_of_digits_are_named(client: TestClient, auth: Auth,
                                                       city: dict[str, int]) -> None:
    for key in ("lon", "t"):  # float() overflowed: a 500
        point = {**walk(1)[0], key: 10 ** 400}
        answer = post(client, auth, {"worker_id": city["P-1"], "points": [point]}, status=422)
        assert answer["detail"]["field"] == f"points[0].{key}"


def test_the_cli_checks_the_report_path_before_writing(cli: Callable[..., Result],
                                                       session: Session, city: dict[str, int],
                                                       tmp_path: Path) -> None:
    track = tmp_path / "ok.csv"
    track.write_text("lon,lat,t\n" + "".join(f"{p['lon']},{p['lat']},{p['t']}\n"
                                             for p in walk(3)))
    result = cli("tracks", "import", str(track), "--worker", "P-1", "--report",
                 str(tmp_path / "missing" / "r.json"))
    assert result.exit_code == 2, result.output
    assert "report" in result.output or "missing" in result.output
    assert scalar(session, "SELECT count(*) FROM track_point") == 0


def test_several_files_are_one_upload_but_an_unknown_field_is_refused(
        client: TestClient, auth: Auth, city: dict[str, int]) -> None:
    answer = client.post("/api/v1/tracks/import",
                         data={"worker_id": str(city["P-1"]), "max_sped_mps": "4"},
                         files=[("file", ("a.gpx", _gpx(walk(10)),
                                          "text/plain"))], headers=auth("dispatcher"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "max_sped_mps"
    assert "max_speed_mps" in answer.json()["detail"]["valid"]


def test_geojson_booleans_are_not_coordinates(client: TestClient, auth: Auth, session: Session,
                                              city: dict[str, int]) -> None:
    """numpy takes JSON ``true`` for 1.0: a fix at (1, 1) used to be stored."""
    t = walk(2)[0]["t"]
    for geometry, field in (({"type": "Point", "coordinates": [True, True]}, "[0].lon"),
                            ({"type": "LineString", "coordinates": [[119.3, 26.08],
                                                                    [119.3001, True]]},
                             "[1].lat")):
        props = {"t": t} if geometry["type"] == "Point" else {"coordTimes": [t, t]}
        data = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": geometry, "properties": props}]}
        answer = _upload(client, auth, city["P-1"], "b.geojson", json.dumps(data))
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]["field"].endswith(field), answer.text
    assert scalar(session, "SELECT count(*) FROM track_point") == 0


def test_a_multilinestring_of_numbers_is_named(client: TestClient, auth: Auth,
                                               city: dict[str, int]) -> None:
    data = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
        "type": "MultiLineString", "coordinates": [1, 2]}, "properties": {
            "coordTimes": [[walk(1)[0]["t"]], [walk(1)[0]["t"]]]}}]}
    answer = _upload(client, auth, city["P-1"], "m.geojson", json.dumps(data))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "m.geojson: features[0].geometry.coordinates"


def test_limits_beyond_a_day_or_any_speed_are_refused(client: TestClient, auth: Auth,
                                                      cli: Callable[..., Result],
                                                      city: dict[str, int],
                                                      tmp_path: Path) -> None:
    """A gap of 1e11 s overflowed the date range (a 500); an infinite speed cleaned nothing."""
    for key, value in (("max_gap_s", 1e11), ("max_speed_mps", math.inf),
                       ("max_speed_mps", 1e6)):
        body = {"worker_id": city["P-1"], "points": walk(2), "dry_run": True, key: value}
        answer = client.post("/api/v1/tracks", content=json.dumps(body),  # Infinity as JS
                             headers={**auth("dispatcher"), "Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]["field"] == key, answer.text
        form = client.post("/api/v1/tracks/import",
                           data={"worker_id": str(city["P-1"]), key: str(value)},
                           files=[("file", ("a.gpx", _gpx(walk(3)), "text/plain"))],
                           headers=auth("dispatcher"))
        assert form.status_code == 422 and form.json()["detail"]["field"] == key, form.text
    track = tmp_path / "ok.csv"
    track.write_text("lon,lat,t\n" + "".join(f"{p['lon']},{p['lat']},{p['t']}\n"
                                             for p in walk(3)))
    result = cli("tracks", "import", str(track), "--worker", "P-1", "--max-gap", "1e12",
                 "--dry-run")
    assert result.exit_code == 2 and "--max-gap" in result.output, result.output
    result = cli("tracks", "import", str(track), "--worker", "P-1", "--max-speed", "nan",
                 "--dry-run")  # "Input should be less than or equal to 1000"
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "nan is not a number" in out, out


def test_a_lone_surrogate_in_a_track_file_is_a_422_not_a_500(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    """The refusal quoted the value, and an answer holding a lone surrogate cannot be sent."""
    for props, geometry in (({"t": "\ud800"}, [119.305, 26.085]),
                            ({"t": walk(1)[0]["t"]}, ["\udc00", 26.085])):
        data = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": geometry},
             "properties": props}]}
        answer = _upload(client, auth, city["P-1"], "s.geojson", json.dumps(data))
        assert answer.status_code == 422, answer.text
        assert "\\ud" in answer.text  # the surrogate written as its escape
    assert scalar(session, "SELECT count(*) FROM track_point") == 0


def test_misspelt_keys_and_keys_given_twice_are_refused(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    """ "dryrun": true was dropped and the fixes stored; a key twice in a file kept the last."""
    answer = post(client, auth, {"worker_id": city["P-1"], "dryrun": True,
                                 "points": walk(2)}, status=422)
    assert answer["detail"]["field"] == "dryrun"
    point = {**walk(1)[0], "alt": 5}
    answer = post(client, auth, {"worker_id": city["P-1"], "points": [point]}, status=422)
    assert answer["detail"]["field"] == "points[0].alt"
    first, second = walk(2)
    text = ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
            f'{{"type": "Point", "coordinates": [{first["lon"]}, {first["lat"]}]}}, '
            f'"properties": {{"t": "{first["t"]}", "t": "{second["t"]}"}}}}]}}')
    twice = _upload(client, auth, city["P-1"], "d.geojson", text)
    assert twice.status_code == 422, twice.text
    assert twice.json()["detail"]["field"] == "d.geojson.features[0].properties.t"
    nul = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [119.305, 26.085]},
         "properties": {"t": first["t"] + "\u0000"}}]}
    answer = _upload(client, auth, city["P-1"], "n.geojson", json.dumps(nul))
    assert answer.status_code == 422 and "NUL" in answer.text, answer.text
    assert scalar(session, "SELECT count(*) FROM track_point") == 0


def test_a_folder_without_track_files_is_named(cli: Callable[..., Result], session: Session,
                                               city: dict[str, int], tmp_path: Path) -> None:
    """GeoLife's folders hold their files in Trajectory/: "no track file given" named none."""
    (tmp_path / "000" / "Trajectory").mkdir(parents=True)
    result = cli("tracks", "import", str(tmp_path), "--worker", "P-1")
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and str(tmp_path) in out and "subfolders" in out, out
    assert scalar(session, "SELECT count(*) FROM track_point") == 0
