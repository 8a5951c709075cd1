"""Setup-time generation of the assets folium loads from places npm does not serve.

* ``bootstrap-glyphicons.css``: folium links the standalone glyphicons stylesheet
  of Bootstrap 3.0 from netdna (it styles ``Icon(prefix="glyphicon")`` markers).
  npm carries Bootstrap 3.4.1, whose ``bootstrap.css`` holds the same rules
  between its ``@font-face`` for "Glyphicons Halflings" and the next section; we
  cut them out next to it, so the relative ``../fonts/`` URLs stay right.
* ``leaflet-heat-weighted.js``: folium loads its own copy of Leaflet.heat 0.2.0
  from GitHub, with Leaflet.heat pull request #78 applied: the intensity of a
  point is its weight, not its weight scaled by the zoom level, and the colour
  scale runs up to the binned weights on screen (their 98th percentile here). The heatmap page feeds
  per-H3-cell weights, so this matters. We apply the same change to the npm
  package's ``_redraw`` (written here, not copied).

* ``leaflet.timedimension.control.offline.css``: the npm stylesheet of
  Leaflet.TimeDimension loads the glyphicons font of its buttons from netdna;
  this copy points the same ``@font-face`` at Bootstrap 3.4.1's fonts from npm.

``python -m maps.assets`` (run by ``scripts/setup.sh`` after ``npm ci``) writes
both; it fails loudly when the npm files are not the versions this expects.
"""

from __future__ import annotations

import sys
from pathlib import Path

from maps.assets import (
    GLYPHICONS_CSS,
    TIMEDIMENSION_CSS,
    VENDOR_DIR,
    WEIGHTED_HEAT_JS,
    missing_assets,
)

_BOOTSTRAP3_CSS = "bootstrap3/dist/css/bootstrap.css"
_GLYPH_START = '@font-face {\n  font-family: "Glyphicons Halflings";'
_GLYPH_END = "\n* {\n"

_HEAT_JS = "leaflet.heat/dist/leaflet-heat.js"
_TIMEDIMENSION_CSS = "leaflet-timedimension/dist/leaflet.timedimension.control.css"
_NETDNA_FONTS = "//netdna.bootstrapcdn.com/bootstrap/3.0.0/fonts/"
_NPM_FONTS = "../../bootstrap3/dist/fonts/"  # from leaflet-timedimension/dist/
_REDRAW_START = "_redraw:function(){"
_REDRAW_END = ",_animateZoom:"

#: Leaflet.heat's _redraw with the weights fix: bins sum the raw weights (no zoom
#: factor) and the heat scale tops out at the 98th percentile of the bins on screen
#: (the largest bin when there are 20 or fewer), so one extreme hotspot does not wash
#: out every other.
_WEIGHTED_REDRAW = """_redraw:function(){
  if (!this._map) { return; }
  var r = this._heat._r, size = this._map.getSize(),
      bounds = new L.Bounds(L.point([-r, -r]), size.add([r, r])),
      cellSize = r / 2, grid = [], panePos = this._map._getMapPanePos(),
      offsetX = panePos.x % cellSize, offsetY = panePos.y % cellSize,
      max = 0, data = [], i, len, j, cell, p, x, y, w, ll;
  for (i = 0, len = this._latlngs.length; i < len; i++) {
    ll = this._latlngs[i];
    p = this._map.latLngToContainerPoint(ll);
    if (!bounds.contains(p)) { continue; }
    x = Math.floor((p.x - offsetX) / cellSize) + 2;
    y = Math.floor((p.y - offsetY) / cellSize) + 2;
    w = ll.alt !== undefined ? ll.alt : (ll[2] !== undefined ? +ll[2] : 1);
    grid[y] = grid[y] || [];
    cell = grid[y][x];
    if (cell) {
      cell[0] = (cell[0] * cell[2] + p.x * w) / (cell[2] + w);
      cell[1] = (cell[1] * cell[2] + p.y * w) / (cell[2] + w);
      cell[2] += w;
    } else {
      cell = grid[y][x] = [p.x, p.y, w];
    }
    if (cell[2] > max) { max = cell[2]; }
  }
  var weights = [];
  for (i = 0, len = grid.length; i < len; i++) {
    if (!grid[i]) { continue; }
    for (j = 0; j < grid[i].length; j++) {
      cell = grid[i][j];
      if (cell) {
        data.push([Math.round(cell[0]), Math.round(cell[1]), cell[2]]);
        weights.push(cell[2]);
      }
    }
  }
  if (weights.length > 20) {  // a few extreme bins must not wash out the rest
    weights.sort(function (a, b) { return a - b; });
    max = weights[Math.floor(0.98 * (weights.length - 1))];
  }
  this._heat.max(max > 0 ? max : 1);
  this._heat.data(data).draw(this.options.minOpacity);
  this._frame = null;
}"""


def glyphicons_css(bootstrap_css: str) -> str:
    """The glyphicons part of Bootstrap 3's ``bootstrap.css`` as a stylesheet of its own."""
    start = bootstrap_css.find(_GLYPH_START)
    end = bootstrap_css.find(_GLYPH_END, start)
    if start < 0 or end < 0:
        raise RuntimeError(f"{_BOOTSTRAP3_CSS}: the glyphicons section was not found; "
                           "package.json must pin bootstrap3 to npm:bootstrap@3.4.1")
    return ("/* Glyphicons Halflings, cut from Bootstrap 3.4.1 (MIT) by maps/asset_build.py */\n"
            + bootstrap_css[start:end] + "\n")


def weighted_heat_js(leaflet_heat_js: str) -> str:
    """Leaflet.heat 0.2.0 with its ``_redraw`` replaced by the weight-true version."""
    start = leaflet_heat_js.find(_REDRAW_START)
    end = leaflet_heat_js.find(_REDRAW_END, start)
    if start < 0 or end < 0 or leaflet_heat_js.count(_REDRAW_START) != 1:
        raise RuntimeError(f"{_HEAT_JS}: _redraw was not found once; package.json must pin "
                           "leaflet.heat to 0.2.0")
    return ("/* Leaflet.heat 0.2.0 (BSD-2), _redraw patched by maps/asset_build.py: "
            "weights not scaled by zoom (cf. Leaflet.heat PR #78) */\n"
            + leaflet_heat_js[:start] + _WEIGHTED_REDRAW + leaflet_heat_js[end:])


def timedimension_css(control_css: str) -> str:
    """Leaflet.TimeDimension's control stylesheet with its glyphicons font from npm."""
    if _NETDNA_FONTS not in control_css:
        raise RuntimeError(f"{_TIMEDIMENSION_CSS}: the netdna font URLs were not found; "
                           "package.json must pin leaflet-timedimension to 1.1.1")
    return ("/* Leaflet.TimeDimension 1.1.1 (MIT), fonts from bootstrap3 by "
            "maps/asset_build.py */\n" + control_css.replace(_NETDNA_FONTS, _NPM_FONTS))


def build(vendor_dir: Path = VENDOR_DIR) -> list[Path]:
    """Write the generated assets under ``vendor_dir``; returns the files written."""
    outputs = {
        GLYPHICONS_CSS: glyphicons_css((vendor_dir / _BOOTSTRAP3_CSS).read_text("utf-8")),
        WEIGHTED_HEAT_JS: weighted_heat_js((vendor_dir / _HEAT_JS).read_text("utf-8")),
        TIMEDIMENSION_CSS: timedimension_css(
            (vendor_dir / _TIMEDIMENSION_CSS).read_text("utf-8")),
    }
    written = []
    for rel, content in outputs.items():
        path = vendor_dir / rel
        if not path.is_file() or path.read_text("utf-8") != content:
            path.write_text(content, "utf-8")
            written.append(path)
    return written


def main() -> None:
    """Generate the assets, then check every asset a page needs is installed."""
    for path in build():
        print(f"wrote {path.relative_to(VENDOR_DIR.parent)}")
    missing = missing_assets()
    if missing:
        print("missing front-end assets (run `npm ci`): " + ", ".join(missing), file=sys.stderr)
        raise SystemExit(1)
