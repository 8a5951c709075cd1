"""The registry of map pages, and the one path from raw parameters to an HTML page.

A page is a module ``maps/pages/<name>.py`` with ``KIND`` (its URL name),
``TITLE``, ``class Params(pydantic.BaseModel)`` (its filters and path values,
each field's ``description`` saying what is valid) and
``build(session, params, basemap, *, lang="zh") -> folium.Map``. It may set
``ROLES`` (API roles allowed besides admin; default: every signed-in user) and
``EXTRA_CSS`` (e.g. print CSS). The HTTP router and ``patrolgrid maps render``
both go through :func:`render`, so a page is the same in a browser and a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound
from geo.settings import Settings
from maps.basemap import basemap_from_settings
from maps.offline import render_page
from maps.pages import coverage, dispatch, grids, heatmap, hexbins, planner, routes

#: KIND -> page module. Each page adds itself here with one line.
PAGES: dict[str, ModuleType] = {}
PAGES[coverage.KIND] = coverage
PAGES[routes.KIND] = routes
PAGES[dispatch.KIND] = dispatch
PAGES[heatmap.KIND] = heatmap
PAGES[hexbins.KIND] = hexbins
PAGES[grids.KIND] = grids
PAGES[planner.KIND] = planner

LANGS = ("zh", "en")
#: Query parameters every page takes besides its own ``Params``.
COMMON_PARAMS = ("basemap", "lang", "access_token")


def page_module(kind: str) -> ModuleType:
    """The page registered as ``kind``, or NotFound naming the kinds there are."""
    module = PAGES.get(kind)
    if module is None:
        raise NotFound(f"there is no map page {kind!r}", field="kind", value=kind,
                       valid=", ".join(sorted(PAGES)) or "no page is registered")
    return module


def parse_params(module: ModuleType, raw: Mapping[str, Any]) -> BaseModel:
    """``raw`` (query or CLI values) validated by the page's ``Params``.

    Raises
    ------
    InvalidInput
        Naming the first bad field, its value and what is valid (the field's
        description); every problem is listed under ``errors``.
    """
    params_cls: type[BaseModel] = module.Params
    try:
        return params_cls.model_validate(dict(raw))
    except ValidationError as exc:
        fields = params_cls.model_fields
        problems: list[dict[str, Any]] = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "params"
            top = str(err["loc"][0]) if err["loc"] else ""
            info = fields.get(top)
            if err["type"] in ("extra_forbidden", "none_required"):  # none: a shared filter
                valid = "a parameter of this page: " + ", ".join(  # this page refuses
                    [*page_params(params_cls), *COMMON_PARAMS])
                if info is not None and info.description:
                    valid = f"{info.description}; {valid}"
                err = {**err, "msg": "this page does not take this parameter"}
            else:
                valid = (info.description if info is not None and info.description
                         else err["msg"])
            value = None if err["type"] == "missing" else err.get("input")  # not the whole dict
            if isinstance(value, list):  # as the query wrote it: category=A,B or a repeat
                value = ",".join(str(v) for v in value)
            problems.append({"field": name, "value": value if isinstance(
                value, str | int | float | bool | None) else str(value),
                "message": f"{name}: {err['msg']}", "valid": valid})
        first = problems[0]
        raise InvalidInput(str(first["message"]), field=str(first["field"]),
                           value=first["value"], valid=str(first["valid"]),
                           extra={"errors": problems}) from None


def page_params(params_cls: type[BaseModel]) -> list[str]:
    """The parameters a page takes, as its URL names them: not the shared ones it refuses
    (typed ``None``, as ``status`` on the grids page)."""
    return [f.alias or name for name, f in params_cls.model_fields.items()
            if f.annotation is not type(None)]


def check_lang(lang: str | None) -> str:
    """``lang`` if it is one of ``LANGS`` (default ``zh``), else InvalidInput."""
    value = lang or "zh"
    if value not in LANGS:
        raise InvalidInput(f"lang {value!r} is not one of {', '.join(LANGS)}", field="lang",
                           value=lang, valid=", ".join(LANGS))
    return value


def render(session: Session, settings: Settings, kind: str, raw: Mapping[str, Any], *,
           basemap: str | None = None, lang: str | None = None, inline: bool = False,
           asset_base: str = "/vendor") -> str:
    """The HTML of page ``kind`` for the raw parameters ``raw``.

    Raises NotFound for an unknown kind (or an id the page does not find) and
    InvalidInput for a bad parameter, basemap or language, or for a page that works
    through the API (``NEEDS_SERVER``) asked for as a standalone file (``inline``).
    """
    module = page_module(kind)
    if inline and getattr(module, "NEEDS_SERVER", False):
        standalone = sorted(k for k, m in PAGES.items() if not getattr(m, "NEEDS_SERVER", False))
        raise InvalidInput(
            f"the {kind} page works through the API, so it cannot be a standalone file",
            field="kind", value=kind,
            valid=f"one of {', '.join(standalone)}; open {kind} from the server "
                  f"({getattr(module, 'SERVER_PATH', '/maps/' + kind)})")
    language = check_lang(lang)
    chosen = basemap_from_settings(settings, basemap)
    params = parse_params(module, raw)
    m = module.build(session, params, chosen, lang=language)
    title = module.TITLE if isinstance(module.TITLE, str) else module.TITLE[language]
    return render_page(m, title=title, inline=inline, asset_base=asset_base,
                       extra_css=getattr(module, "EXTRA_CSS", ""))
