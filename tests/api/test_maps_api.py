"""``/maps``: auth (header, ?access_token=, login cookie), parameter errors, 404s, CLI render.

The page here is ``tests/maps/sample_page.py`` (the grids of a level from the
database) registered for the test; the real pages have tests of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import Result

from api.auth import COOKIE, PAGE_HEADER
from maps import pages
from tests.geo import intake_city
from tests.maps import sample_page

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(autouse=True)
def _sample(monkeypatch: pytest.MonkeyPatch, session: Session) -> Iterator[None]:
    monkeypatch.setitem(pages.PAGES, sample_page.KIND, sample_page)
    intake_city.build(session)
    session.commit()
    yield


def _token(auth: Callable[[str], dict[str, str]], role: str = "patrol") -> str:
    return auth(role)["Authorization"].removeprefix("Bearer ")


def test_page_with_bearer_header(client: TestClient, auth: Callable[[str], dict[str, str]]
                                 ) -> None:
    r = client.get("/maps/sample", params={"level": "grid"}, headers=auth("patrol"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>测试页</title>" in r.text and "/vendor/leaflet/dist/leaflet.js" in r.text
    assert '"code": "G11"' in r.text and '"code": "S1"' not in r.text
    en = client.get("/maps/sample", params={"lang": "en"}, headers=auth("patrol"))
    assert "<title>Sample page</title>" in en.text and '"code": "S1"' in en.text


def test_access_token_on_the_url(client: TestClient, auth: Callable[[str], dict[str, str]]
                                 ) -> None:
    r = client.get("/maps/sample", params={"access_token": _token(auth)})
    assert r.status_code == 200 and "L.map(" in r.text


def test_no_token_is_401_for_clients_and_login_for_browsers(client: TestClient) -> None:
    r = client.get("/maps/sample")
    assert r.status_code == 401 and r.json()["detail"]["field"] == "cookie"
    r = client.get("/maps/sample?level=grid", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/maps/login?next=%2Fmaps%2Fsample%3Flevel%3Dgrid"
    bad = client.get("/maps/sample", params={"access_token": "pg_nope"}, headers=HTML)
    assert bad.status_code == 401 and "access_token" in bad.text and "<form" in bad.text
    bad = client.get("/maps/sample", params={"access_token": "pg_nope"})
    assert bad.status_code == 401 and bad.json()["detail"]["field"] == "access_token"


def test_login_form_sets_an_httponly_cookie(client: TestClient,
                                            auth: Callable[[str], dict[str, str]]) -> None:
    form = client.get("/maps/login", params={"next": "/maps/sample?level=grid"})
    assert form.status_code == 200 and 'name="token"' in form.text
    assert 'value="/maps/sample?level=grid"' in form.text
    wrong = client.post("/maps/login", data={"token": "pg_wrong", "next": "/maps/sample"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert COOKIE not in client.cookies
    r = client.post("/maps/login", data={"token": _token(auth), "next": "/maps/sample?level=grid"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/maps/sample?level=grid"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "Path=/;" in cookie
    assert "SameSite=lax" in cookie
    page = client.get("/maps/sample", params={"level": "grid"}, headers=HTML)
    assert page.status_code == 200 and '"code": "G11"' in page.text
    # the API takes the cookie only from a map page's script (its header), never alone
    alone = client.get("/api/v1/grids")
    assert alone.status_code == 401 and alone.json()["detail"]["field"] == "Authorization"
    from_page = client.get("/api/v1/grids", headers={PAGE_HEADER: "1"})
    assert from_page.status_code == 200, from_page.text
    index = client.get("/maps", headers=HTML)
    assert index.status_code == 200 and 'href="/maps/sample"' in index.text
    out = client.get("/maps/logout", follow_redirects=False)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    client.cookies.clear()
    client.cookies.set(COOKIE, "pg_revoked")
    stale = client.get("/api/v1/grids", headers={PAGE_HEADER: "1"})
    assert stale.status_code == 401 and stale.json()["detail"]["field"] == "cookie"
    assert "/maps/login" in stale.json()["detail"]["valid"]


def test_a_stale_link_token_never_loops_back_to_the_form(
        client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    bad = client.get("/maps/sample", params={"level": "grid", "access_token": "pg_old"},
                     headers=HTML)
    assert bad.status_code == 401 and 'value="/maps/sample?level=grid"' in bad.text
    client.post("/maps/login", data={"token": _token(auth), "next": "/maps/sample"})
    again = client.get("/maps/sample", params={"level": "grid", "access_token": "pg_old"},
                       headers=HTML)
    assert again.status_code == 200 and "L.map(" in again.text  # the sign-in holds
    client.cookies.clear()
    client.cookies.set(COOKIE, "pg_revoked")
    revoked = client.get("/maps/sample", headers=HTML, follow_redirects=False)
    assert revoked.status_code == 401 and "revoked or expired" in revoked.text
    assert f'{COOKIE}=""' in revoked.headers["set-cookie"]
    # a revoked sign-in beside a stale link's token is cleared too
    both = client.get("/maps/sample", params={"access_token": "pg_old"}, headers=HTML,
                      follow_redirects=False)
    assert both.status_code == 401 and f'{COOKIE}=""' in both.headers["set-cookie"]


def test_the_login_page_says_only_what_the_server_says(client: TestClient) -> None:
    """An ``error`` in the URL was shown as the form's message: a link could tell users to
    send their token somewhere. A post without a token was a JSON 422 for a browser."""
    lure = "系统升级：请将令牌发送至 it-help@example.com"
    form = client.get("/maps/login", params={"error": lure})
    assert form.status_code == 200 and "it-help@example.com" not in form.text
    empty = client.post("/maps/login", data={"next": "/maps/sample"}, headers=HTML)
    assert empty.status_code == 422 and "<form" in empty.text and "paste an API token" in \
        empty.text
    blank = client.post("/maps/login", data={"token": " ", "next": "/maps/sample"},
                        headers=HTML)
    assert blank.status_code == 422 and 'value="/maps/sample"' in blank.text


def test_login_never_redirects_off_site(client: TestClient,
                                        auth: Callable[[str], dict[str, str]]) -> None:
    for target in ("https://evil.example/", "//evil.example/maps", "/api/v1/grids"):
        r = client.post("/maps/login", data={"token": _token(auth), "next": target},
                        follow_redirects=False)
        assert r.headers["location"] == "/maps", target


@pytest.mark.parametrize(("query", "field", "value", "valid"), [
    ({"level": "city"}, "level", "city", "street, community or grid"),
    ({"limit": "0"}, "limit", "0", "an integer from 1 to 1000"),
    ({"limit": "many"}, "limit", "many", "an integer from 1 to 1000"),
    ({"colour": "red"}, "colour", "red", "a parameter of this page: level, code, limit, "
                                          "basemap, lang, access_token"),
    ({"lang": "fr"}, "lang", "fr", "zh, en"),
    ({"basemap": "google"}, "basemap", "google", "none, osm, custom, amap, tianditu"),
])
def test_bad_parameters_are_422_naming_field_value_valid(
        client: TestClient, auth: Callable[[str], dict[str, str]], query: dict[str, str],
        field: str, value: str, valid: str) -> None:
    r = client.get("/maps/sample", params=query, headers=auth("patrol"))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert (detail["field"], detail["value"], detail["valid"]) == (field, value, valid)
    html = client.get("/maps/sample", params=query, headers={**auth("patrol"), **HTML})
    assert html.status_code == 422 and html.headers["content-type"].startswith("text/html")
    assert value in html.text and valid.split(",")[0] in html.text


def test_a_repeated_language_or_basemap_is_refused(
        client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    """The last one used to win: basemap=none&basemap=osm loaded tiles off the intranet."""
    for key, values in (("lang", ["en", "zh"]), ("basemap", ["none", "osm"])):
        r = client.get("/maps/sample", params=[(key, v) for v in values],
                       headers=auth("patrol"))
        assert r.status_code == 422, r.text
        assert (r.json()["detail"]["field"], r.json()["detail"]["value"]) == (key, values)


def test_the_plain_pages_ask_for_no_favicon(client: TestClient) -> None:
    """The sign-in form and the error pages logged a console 404 for /favicon.ico."""
    assert '<link rel="icon" href="data:,">' in client.get("/maps/login").text


def test_unknown_kind_and_unknown_id_are_404(client: TestClient,
                                             auth: Callable[[str], dict[str, str]]) -> None:
    r = client.get("/maps/nosuchpage", headers=auth("patrol"))
    assert r.status_code == 404
    assert r.json()["detail"]["value"] == "nosuchpage" and "sample" in r.json()["detail"]["valid"]
    r = client.get("/maps/sample", params={"code": "G99"}, headers={**auth("patrol"), **HTML})
    assert r.status_code == 404 and "G99" in r.text


def test_page_roles(client: TestClient, auth: Callable[[str], dict[str, str]],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample_page, "ROLES", ("dispatcher",), raising=False)
    r = client.get("/maps/sample", headers=auth("patrol"))
    assert r.status_code == 403 and r.json()["detail"]["valid"] == "admin, dispatcher"
    assert client.get("/maps/sample", headers=auth("dispatcher")).status_code == 200
    page = client.get("/maps/sample", headers={**auth("patrol"), **HTML})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "may not see this page" in page.text and 'href="/maps/logout"' in page.text
    # the index lists only the pages a role may open; one needing a parameter names it
    patrol = client.get("/maps", headers={**auth("patrol"), **HTML}).text
    assert "/maps/sample" not in patrol and "/maps/planner" not in patrol
    planner = client.get("/maps", headers={**auth("planner"), **HTML}).text
    assert "<code>/maps/planner?parent={parent}</code>" in planner
    assert 'href="/maps/planner"' not in planner


def test_vendor_assets_are_served(client: TestClient) -> None:
    r = client.get("/vendor/leaflet.heat/dist/leaflet-heat-weighted.js")
    assert r.status_code == 200 and "L.heatLayer" in r.text


def test_cli_render_writes_a_standalone_file(cli: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "grids.html"
    result = cli("maps", "render", "sample", "--out", out, "--param", "level=community",
                 "--lang", "en")
    assert result.exit_code == 0, result.output
    body = out.read_text("utf-8")
    assert "<script src=" not in body and 'rel="stylesheet"' not in body
    assert '"code": "C1"' in body and "<title>Sample page</title>" in body
    as_url = cli("maps", "render", "sample", "--out", out, "-p", "level=community",
                 "-p", "lang=en")  # the URL's spelling works too
    assert as_url.exit_code == 0 and "<title>Sample page</title>" in out.read_text("utf-8")
    clash = cli("maps", "render", "sample", "--out", out, "--lang", "en", "-p", "lang=zh")
    assert clash.exit_code == 2 and "differ" in clash.output
    token = cli("maps", "render", "sample", "--out", out, "-p", "access_token=x")
    assert token.exit_code == 2 and "needs no token" in token.output
    bad = cli("maps", "render", "sample", "--out", out, "--param", "level")
    assert bad.exit_code == 2 and "key=value" in bad.output
    bad = cli("maps", "render", "sample", "--out", out, "-p", "limit=5000")
    assert bad.exit_code == 2 and "an integer from 1 to 1000" in bad.output
    # a shell's $'\xff' arrives as a lone surrogate: it was a traceback from the database
    bad = cli("maps", "render", "sample", "--out", out, "-p", "level=\udcff")
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "level" in bad.output
    listed = cli("maps", "list")
    assert listed.exit_code == 0 and "sample" in listed.output
    coverage = next(line for line in listed.output.splitlines() if line.startswith("coverage"))
    assert "from, to" in coverage and "start" not in coverage  # the names -p and URLs take
    grids = next(line for line in listed.output.splitlines() if line.startswith("grids"))
    assert "status" not in grids  # refused by that page, so not offered


def test_the_index_opened_with_a_token_links_with_it(
        client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    token = _token(auth)
    index = client.get("/maps", params={"access_token": token}, headers=HTML)
    assert index.status_code == 200
    assert f'href="/maps/sample?access_token={token}"' in index.text
    signed_in = client.get("/maps", headers={**auth("patrol"), **HTML})
    assert 'href="/maps/sample"' in signed_in.text
    assert "测试页" in signed_in.text
    english = client.get("/maps", params={"lang": "en"}, headers={**auth("patrol"), **HTML})
    assert "Sample page" in english.text and 'href="/maps/sample?lang=en"' in english.text
    wrong = client.get("/maps", params={"lang": "fr"}, headers={**auth("patrol"), **HTML})
    assert wrong.status_code == 422 and "lang" in wrong.text


def test_paths_and_ids_are_named_for_browsers(client: TestClient,
                                              auth: Callable[[str], dict[str, str]]) -> None:
    headers = {**auth("admin"), **HTML}
    below = client.get("/maps/sample/extra", headers=headers)
    assert below.status_code == 404 and "<h1>404</h1>" in below.text
    assert "/maps/sample/extra" in below.text
    as_json = client.get("/maps/sample/extra", headers=auth("admin"))
    assert as_json.status_code == 404 and as_json.json()["detail"]["field"] == "path"
    twice = client.get("/maps/dispatch/1", params={"incident_id": "5"}, headers=auth("admin"))
    assert twice.status_code == 422 and twice.json()["detail"]["field"] == "incident_id"
    plan = client.get("/maps/planner", params={"parent": "C1", "plan": "999"},
                      headers=auth("admin"))
    assert plan.status_code == 404 and plan.json()["detail"]["field"] == "plan", plan.text
