"""``patrolgrid maps``: the map pages as standalone HTML files (scripts and styles inlined)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.common import check_writable, console, reported_errors, settings, styled
from geo.errors import InvalidInput, storable_text
from geo.store.db import session_scope
from maps import pages

app = typer.Typer(help="Map pages as standalone HTML files that work without internet.",
                  no_args_is_help=True)


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", "k=w", "x=y"]`` -> ``{"k": ["v", "w"], "x": "y"}`` (repeated key: a list)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {pair!r} is not key=value", field="--param",
                               value=pair, valid="key=value, e.g. --param category=C0101")
        key = key.strip()
        storable_text(value, storable_text(key, "--param"))  # $'\xff' is a lone surrogate
        if key in out:
            out[key] = [*(out[key] if isinstance(out[key], list) else [out[key]]), value]
        else:
            out[key] = value
    return out


@app.command("render")
def render(
    kind: Annotated[str, typer.Argument(help="The page: heatmap, hexbins, grids, ...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A page parameter as key=value (repeat it), the same as the "
        "page's query parameters, e.g. -p since=2026-01-01 -p category=C0101.")] = None,
    basemap: Annotated[str | None, typer.Option(
        "--basemap", help="none, osm, custom, amap or tianditu (default: PATROLGRID_BASEMAP).")]
    = None,
    lang: Annotated[str, typer.Option("--lang", help="zh or en.")] = "zh",
) -> None:
    """Write map page KIND as one HTML file with every script, style and font inside it."""
    cfg = settings()
    with reported_errors():
        check_writable(out, "--out")
        raw = parse_pairs(param or [])
        if "access_token" in raw:
            raise InvalidInput("a file needs no token: --param access_token is for URLs",
                               field="--param", value="access_token",
                               valid="the page's own parameters (patrolgrid maps list)")
        for name, given in (("lang", lang), ("basemap", basemap)):  # as the URL would take them
            if name in raw:
                value = raw.pop(name)
                if given not in (None, value) and not (name == "lang" and given == "zh"):
                    raise InvalidInput(f"--{name} {given} and --param {name}={value} differ",
                                       field=f"--{name}", value=value, valid="one of them")
                lang, basemap = (value, basemap) if name == "lang" else (lang, value)
        with session_scope(cfg.database_url) as session:
            body = pages.render(session, cfg, kind, raw, basemap=basemap, lang=lang, inline=True)
    out.write_text(body, "utf-8")
    console.print(f"wrote {out} ({len(body.encode('utf-8')) / 1e6:.2f} MB)")


@app.command("list")
def list_pages() -> None:
    """The pages there are and their parameters (as ``--param`` and the URL name them)."""
    for kind, module in sorted(pages.PAGES.items()):
        fields = ", ".join(pages.page_params(module.Params))
        console.print(styled((kind, "bold"), f"  {fields}"))
