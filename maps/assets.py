"""Front-end assets installed from the npm registry at setup time and served by our app.

No page of patrolgrid loads anything from a CDN: ``make setup`` runs ``npm ci``
in the project root, then ``python -m maps.assets`` writes the three files folium
needs that npm does not carry as such (see :mod:`maps.asset_build`), and the app
serves ``node_modules`` under ``/vendor``.

``CDN`` maps every CDN URL folium (and branca) emit for the elements our pages
use to a file of an npm package; ``DROPPED`` lists the ones our pages do without.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "node_modules"

#: Generated at setup from npm packages (see maps.asset_build), relative to VENDOR_DIR.
GLYPHICONS_CSS = "bootstrap3/dist/css/bootstrap-glyphicons.css"
WEIGHTED_HEAT_JS = "leaflet.heat/dist/leaflet-heat-weighted.js"
TIMEDIMENSION_CSS = "leaflet-timedimension/dist/leaflet.timedimension.control.offline.css"
GENERATED: tuple[str, ...] = (GLYPHICONS_CSS, WEIGHTED_HEAT_JS, TIMEDIMENSION_CSS)

_JSDELIVR = "https://cdn.jsdelivr.net"
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"
_FOLIUM_GH = f"{_JSDELIVR}/gh/python-visualization/folium"

#: CDN URL emitted by folium/branca -> file under VENDOR_DIR that replaces it.
CDN: dict[str, str] = {
    # folium.Map: _default_js / _default_css
    f"{_JSDELIVR}/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet/dist/leaflet.js",
    f"{_JSDELIVR}/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet/dist/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    f"{_JSDELIVR}/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js":
        "bootstrap/dist/js/bootstrap.bundle.min.js",
    f"{_JSDELIVR}/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css":
        "bootstrap/dist/css/bootstrap.min.css",
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css":
        GLYPHICONS_CSS,
    f"{_JSDELIVR}/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js":
        "leaflet.awesome-markers/dist/leaflet.awesome-markers.js",
    f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css":
        "leaflet.awesome-markers/dist/leaflet.awesome-markers.css",
    # folium.plugins.HeatMap (folium's copy of Leaflet.heat with the weights patch)
    f"{_FOLIUM_GH}@main/folium/templates/leaflet_heat.min.js": WEIGHTED_HEAT_JS,
    # folium.plugins.HeatMapWithTime
    f"{_JSDELIVR}/npm/iso8601-js-period@0.2.1/iso8601.min.js": "iso8601-js-period/iso8601.js",
    f"{_JSDELIVR}/npm/leaflet-timedimension@1.1.1/dist/leaflet.timedimension.min.js":
        "leaflet-timedimension/dist/leaflet.timedimension.min.js",
    f"{_JSDELIVR}/npm/leaflet-timedimension@1.1.1/dist/leaflet.timedimension.control.css":
        TIMEDIMENSION_CSS,
    f"{_FOLIUM_GH}/folium/templates/pa7_hm.min.js": "heatmap.js/build/heatmap.min.js",
    f"{_FOLIUM_GH}/folium/templates/pa7_leaflet_hm.min.js":
        "heatmap.js/plugins/leaflet-heatmap/leaflet-heatmap.js",
    # Leaflet.draw (folium.plugins.Draw's URLs; the planner page)
    f"{_CDNJS}/leaflet.draw/1.0.2/leaflet.draw.js": "leaflet-draw/dist/leaflet.draw.js",
    f"{_CDNJS}/leaflet.draw/1.0.2/leaflet.draw.css": "leaflet-draw/dist/leaflet.draw.css",
    # branca colormaps (legends)
    f"{_CDNJS}/d3/3.5.5/d3.min.js": "d3/d3.min.js",
}

#: CDN URLs folium emits that our pages do without (the link is removed), and why.
DROPPED: dict[str, str] = {
    f"{_FOLIUM_GH}/folium/templates/leaflet.awesome.rotate.min.css":
        "only for rotated marker icons (Icon(angle=...)), which no page uses; folium's own "
        "file, not published on npm",
}

#: npm package -> files a page needs from it beyond ``CDN`` (fonts, images, later pages).
REQUIRED: dict[str, tuple[str, ...]] = {
    "swagger-ui-dist": ("swagger-ui-bundle.js", "swagger-ui.css"),
    "leaflet-draw": ("dist/leaflet.draw.js", "dist/leaflet.draw.css"),
    "leaflet.heat": ("dist/leaflet-heat.js",),
    "bootstrap3": ("dist/css/bootstrap.css", "dist/fonts/glyphicons-halflings-regular.woff2"),
    "@fortawesome/fontawesome-free": ("webfonts/fa-solid-900.woff2",),
    "leaflet": ("dist/images/marker-icon.png", "dist/images/layers.png"),
}


def missing_assets(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """The required asset files not present under ``vendor_dir`` (empty when all are there)."""
    wanted = [f"{pkg}/{name}" for pkg, names in REQUIRED.items() for name in names]
    wanted += sorted(set(CDN.values()))
    return [path for path in wanted if not (vendor_dir / path).is_file()]


if __name__ == "__main__":  # `python -m maps.assets`, run by scripts/setup.sh
    from maps.asset_build import main

    main()
