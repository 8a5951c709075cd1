"""Offline pages: every CDN URL folium emits is ours, inlined or linked under /vendor."""

from __future__ import annotations

import re

import branca.colormap as cm
import folium
import pytest
from folium.plugins import HeatMap, HeatMapWithTime

from maps import asset_build
from maps.assets import CDN, DROPPED, VENDOR_DIR, missing_assets
from maps.basemap import Basemap, new_map
from maps.offline import CDN_HOSTS, OfflineError, render_page

_SRC = re.compile(r'<(?:script|link)[^>]*(?:src|href)="(?!data:)([^"]+)"')


def _busy_map() -> folium.Map:
    """A map with every folium element our pages use."""
    m = new_map(basemap=Basemap("none"), bounds=(119.25, 26.05, 119.32, 26.11))
    HeatMap([[26.08, 119.29, 3.0], [26.09, 119.30, 1.0]], name="heat").add_to(m)
    HeatMapWithTime([[[26.08, 119.29, 1.0]], [[26.09, 119.3, 2.0]]], index=["a", "b"]).add_to(m)
    folium.Marker([26.08, 119.29], icon=folium.Icon(icon="info-sign")).add_to(m)
    folium.Marker([26.09, 119.29], icon=folium.Icon(icon="user", prefix="fa")).add_to(m)
    folium.GeoJson({"type": "Point", "coordinates": [119.29, 26.08]}).add_to(m)
    cm.StepColormap(["#ffeeee", "#ff0000"], vmin=0, vmax=10, caption="count").add_to(m)
    folium.LayerControl().add_to(m)
    return m


def test_folium_urls_are_all_mapped() -> None:
    """A folium upgrade that changes a CDN URL fails here, not in a browser."""
    folium_urls = {url for _, url in folium.Map.default_js + folium.Map.default_css}
    for cls in (HeatMap, HeatMapWithTime):
        folium_urls |= {url for _, url in cls.default_js + cls.default_css}
    unmapped = folium_urls - set(CDN) - set(DROPPED)
    assert unmapped == set()


def test_every_asset_is_installed() -> None:
    assert missing_assets() == []


def test_no_stylesheet_loads_from_outside() -> None:
    """Fonts and images of every mapped stylesheet are npm files too."""
    remote = re.compile(r"""url\(\s*['"]?(?:[a-z]+:)?//""", re.IGNORECASE)
    for rel in sorted(set(CDN.values())):
        if rel.endswith(".css"):
            assert remote.search((VENDOR_DIR / rel).read_text("utf-8")) is None, rel


def test_linked_page_has_only_vendor_urls() -> None:
    page = render_page(_busy_map(), title="热力图 <test>")
    urls = _SRC.findall(page)
    assert urls and all(u.startswith("/vendor/") for u in urls), urls
    for url in urls:
        assert (VENDOR_DIR / url.removeprefix("/vendor/")).is_file(), url
    assert "leaflet-heat-weighted.js" in page and "bootstrap-glyphicons.css" in page
    assert "leaflet.awesome.rotate" not in page
    assert not any(host in page for host in CDN_HOSTS)
    assert "<title>热力图 &lt;test&gt;</title>" in page
    assert '<link rel="icon" href="data:,">' in page  # no /favicon.ico request


def test_asset_base_is_used() -> None:
    page = render_page(_busy_map(), title="t", asset_base="/static/npm")
    assert '<script src="/static/npm/leaflet/dist/leaflet.js"></script>' in page


def test_inline_page_links_nothing() -> None:
    page = render_page(_busy_map(), title="t", inline=True)
    assert _SRC.findall(page) == []
    assert "L.heatLayer" in page and "L.Icon.Default.imagePath" in page
    # stylesheet images are data: URIs, fonts keep their woff2 only
    assert 'url("data:font/woff2;base64,' in page
    assert re.search(r'url\((?!["\']?(?:data:|#))', page) is None


def test_unknown_cdn_link_is_refused() -> None:
    m = _busy_map()
    m.get_root().header.add_child(folium.JavascriptLink("https://unpkg.com/foo@1/foo.js"))
    with pytest.raises(OfflineError, match=r"unpkg.com/foo@1/foo.js"):
        render_page(m, title="t")


def test_extra_css_and_html() -> None:
    page = render_page(_busy_map(), title="t", extra_css="@media print{.x{a:b}}",
                       extra_html='<div id="legend-x">x</div>')
    assert "<style>@media print{.x{a:b}}</style>" in page
    assert page.index('<div id="legend-x">') < page.index("</body>")


def test_generated_assets_are_current() -> None:
    """`python -m maps.assets` output matches what the npm files give now."""
    assert asset_build.build() == []
    css = (VENDOR_DIR / "bootstrap3/dist/css/bootstrap-glyphicons.css").read_text("utf-8")
    assert ".glyphicon-info-sign:before" in css and "../fonts/glyphicons-halflings" in css
    assert ".btn" not in css
    heat = (VENDOR_DIR / "leaflet.heat/dist/leaflet-heat-weighted.js").read_text("utf-8")
    assert "Math.pow(2" not in heat  # the zoom factor of Leaflet.heat 0.2.0 is gone
    assert heat.count("_redraw:function(){") == 1


def test_generation_refuses_other_versions() -> None:
    with pytest.raises(RuntimeError, match=r"leaflet\.heat"):
        asset_build.weighted_heat_js("!function(){}")
    with pytest.raises(RuntimeError, match="bootstrap3"):
        asset_build.glyphicons_css(".btn{}")
    with pytest.raises(RuntimeError, match="leaflet-timedimension"):
        asset_build.timedimension_css(".x{}")
