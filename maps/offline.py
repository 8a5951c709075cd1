"""A folium map as a whole HTML page that loads nothing from a CDN.

folium and branca write ``<script src>`` / ``<link rel="stylesheet">`` tags to CDN
URLs. :func:`render_page` rewrites every one to our copy of the npm file
(``maps.assets.CDN``) under ``asset_base`` (the app serves ``node_modules`` at
``/vendor``), or inlines the file (``inline=True``: standalone files written by
``patrolgrid maps render``, with the images and fonts the stylesheets use as
``data:`` URIs). A CDN URL with no local copy is an error, never a silent link.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

import folium

from maps.assets import CDN, DROPPED, VENDOR_DIR

_LINK = re.compile(r'<script src="(?P<js>[^"]*)"></script>'
                   r'|<link rel="stylesheet" href="(?P<css>[^"]*)"\s*/?>')
_CSS_URL = re.compile(r"""url\(\s*(?P<q>['"]?)(?P<url>[^'")]+)(?P=q)\s*\)""")
#: Hosts of the CDNs folium and branca use: none may be left in a page.
CDN_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "code.jquery.com",
             "netdna.bootstrapcdn.com", "maxcdn.bootstrapcdn.com", "unpkg.com", "d3js.org")
_FONT_EXTS = (".woff", ".ttf", ".eot", ".otf")
_LEAFLET_JS = "leaflet/dist/leaflet.js"


class OfflineError(RuntimeError):
    """A page would load something from outside our app (a programming error)."""


def render_page(m: folium.Map, *, title: str, inline: bool = False,
                asset_base: str = "/vendor", extra_css: str = "", extra_html: str = "") -> str:
    """The whole HTML page of ``m`` with every CDN link replaced by our own assets.

    Parameters
    ----------
    m : folium.Map
        The map, with its layers added.
    title : str
        The page title (escaped here).
    inline : bool
        Put the scripts and stylesheets into the page instead of linking them.
    asset_base : str
        URL prefix under which ``node_modules`` is served (links only).
    extra_css, extra_html : str
        A stylesheet for ``<head>`` and markup put at the end of ``<body>``.

    Raises
    ------
    OfflineError
        When the page links a URL that is neither local nor in ``maps.assets.CDN``.
    """
    figure = m.get_root()
    figure.title = html.escape(title)  # type: ignore[attr-defined]
    page = figure.render()

    def replace(match: re.Match[str]) -> str:
        url = match.group("js") or match.group("css") or ""
        if url in DROPPED:
            return ""
        if url not in CDN:
            if _is_local(url):
                return match.group(0)
            raise OfflineError(f"the page links {url}, which patrolgrid does not serve: add it "
                               "to maps.assets.CDN (an npm file) or drop the element")
        if not inline:
            return (f'<script src="{asset_base}/{CDN[url]}"></script>' if match.group("js")
                    else f'<link rel="stylesheet" href="{asset_base}/{CDN[url]}"/>')
        return f"\0{CDN[url]}\0{'js' if match.group('js') else 'css'}\0"

    page = _LINK.sub(replace, page)
    # no token in Referer headers of tile requests; no /favicon.ico request (a console 404)
    meta = ('<meta name="referrer" content="strict-origin-when-cross-origin">'
            '<link rel="icon" href="data:,">')
    page = page.replace("<head>", "<head>\n    " + meta, 1)
    if extra_css:
        page = page.replace("</head>", f"<style>{extra_css}</style>\n</head>", 1)
    if extra_html:
        page = page.replace("</body>", f"{extra_html}\n</body>", 1)
    left = [host for host in CDN_HOSTS if host in page]
    if left:
        raise OfflineError(f"the page still names CDN host(s) {', '.join(left)}")
    if inline:  # only now: the npm files' own comments may name CDN hosts
        page = re.sub("\0([^\0]+)\0(js|css)\0", lambda g: _inline_js(g.group(1))
                      if g.group(2) == "js" else f"<style>{_inline_css(g.group(1))}</style>", page)
    return page


def _is_local(url: str) -> bool:
    return not re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE)


def _read(rel: str) -> str:
    path = VENDOR_DIR / rel
    if not path.is_file():
        raise OfflineError(f"{path} is missing: run `make setup` (npm ci + python -m maps.assets)")
    return path.read_text("utf-8")


def _inline_js(rel: str) -> str:
    script = "<script>" + _read(rel).replace("</script", "<\\/script") + "</script>"
    if rel == _LEAFLET_JS:  # default marker icons: Leaflet finds them through leaflet.css
        images = VENDOR_DIR / "leaflet/dist/images"
        urls = {key: _data_uri(images / name) for key, name in (
            ("iconUrl", "marker-icon.png"), ("iconRetinaUrl", "marker-icon-2x.png"),
            ("shadowUrl", "marker-shadow.png"))}
        options = ",".join(f'{key}:"{uri}"' for key, uri in urls.items())
        script += (f"<script>L.Icon.Default.imagePath='';"
                   f"L.Icon.Default.mergeOptions({{{options}}});</script>")
    return script


def _inline_css(rel: str) -> str:
    """The stylesheet with its relative url()s as data: URIs (woff2 only for fonts)."""
    base = (VENDOR_DIR / rel).parent

    def embed(match: re.Match[str]) -> str:
        url = match.group("url").strip()
        if url.startswith(("data:", "#")):
            return match.group(0)
        if not _is_local(url):
            raise OfflineError(f"{rel} loads {url}: point it at an npm file in "
                               "maps/asset_build.py")
        path = (base / url.split("?")[0].split("#")[0]).resolve()
        font = path.suffix.lower() in _FONT_EXTS or (path.suffix == ".svg" and "#" in url)
        if font:  # browsers pick the woff2 listed beside it
            return "url(data:,)"
        return f'url("{_data_uri(path)}")'

    return _CSS_URL.sub(embed, _read(rel)).replace("</style", "<\\/style")


def _data_uri(path: Path) -> str:
    if not path.is_file():
        raise OfflineError(f"{path} is missing: run `make setup`")
    mime = mimetypes.guess_type(path.name)[0] or (
        "font/woff2" if path.suffix == ".woff2" else "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
