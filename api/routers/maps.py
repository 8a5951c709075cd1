"""``/maps``: the HTML map pages (``maps.pages``), with a login form for browsers.

The same tokens and roles as the API. A page takes its token from the
``Authorization: Bearer`` header, an ``?access_token=`` on the URL or the
HttpOnly cookie ``POST /maps/login`` sets. Without one a browser is sent to the
login form and any other client gets a 401. Errors are HTML pages for browsers
(``Accept: text/html``) and the API's JSON ``{"detail": ...}`` otherwise, with
the field, the value and what is valid.
"""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth import COOKIE
from api.deps import SessionDep, SettingsDep
from api.errors import status_for
from geo.errors import DomainError, InvalidInput, NotFound
from geo.store.users import Principal, authenticate
from maps import pages
from maps.pages import check_lang

router = APIRouter(prefix="/maps", tags=["maps"])

COOKIE_MAX_AGE_S = 12 * 3600
#: Pages whose URL carries one value in the path, and the Params field it fills.
PATH_FIELDS = {"routes": "team", "dispatch": "incident_id"}

_STYLE = ("body{font-family:'Noto Sans CJK SC',sans-serif;max-width:40em;margin:3em auto;"
          "padding:0 1em}input{font-size:1em;padding:.3em;width:100%}"
          "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em}"
          "th{text-align:left}.error{color:#b00}")


def _html(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f'</title><link rel="icon" href="data:,"><style>{_STYLE}</style></head>'  # no favicon 404
        f"<body>{body}</body></html>", status_code=status)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _safe_next(value: str | None) -> str:
    """Only paths of this app's map pages: never an open redirect."""
    if value and value.startswith("/maps") and not value.startswith("//"):
        return value
    return "/maps"


def _error(request: Request, exc: DomainError) -> Response:
    status = status_for(exc)
    if not _wants_html(request):
        return JSONResponse({"detail": exc.to_dict()}, status_code=status)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in exc.to_dict().items() if k in ("field", "value", "valid"))
    return _html(f"{status}", f'<h1>{status}</h1><p class="error">{html.escape(exc.message)}</p>'
                 f"<table>{rows}</table><p><a href=\"/maps\">/maps</a></p>", status)


def _token(request: Request) -> tuple[str | None, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "Authorization"
    if request.query_params.get("access_token"):
        return request.query_params["access_token"], "access_token"
    return request.cookies.get(COOKIE), "cookie"


def _authorize(request: Request, session: SessionDep, roles: tuple[str, ...] | None
               ) -> Principal | Response:
    """The caller, or the response to send instead (login redirect, 401, 403)."""
    token, where = _token(request)
    principal = authenticate(session, token) if token else None
    cookie = request.cookies.get(COOKIE)
    if principal is None and where != "cookie" and cookie and _wants_html(request):
        principal = authenticate(session, cookie)  # a stale link's token: the sign-in holds
    if principal is None:
        if _wants_html(request):
            # back to the page after signing in, without the token that failed (it would
            # fail again and show the form again)
            query = urlencode([(k, v) for k, v in request.query_params.multi_items()
                               if k != "access_token"])
            target = request.url.path + (f"?{query}" if query else "")
            if where == "cookie" and not token:
                return RedirectResponse(f"/maps/login?next={quote(target, safe='')}",
                                        status_code=303)
            form = login_page(target, error=f"{where}: 令牌无效或已撤销 / unknown or revoked token"
                              if where != "cookie" else
                              "登录已失效，请重新登录 / your sign-in was revoked or expired")
            if cookie:  # a sign-in that did not hold (checked above or as the token) goes
                form.delete_cookie(COOKIE, path="/")
            return form
        detail = {"message": "missing or unknown token" if token else "missing token",
                  "field": where, "value": token[:8] + "…" if token else None,
                  "valid": "a live token from `patrolgrid users create`, sent as "
                           "'Authorization: Bearer <token>', ?access_token= or by /maps/login"}
        return JSONResponse({"detail": detail}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    if roles is not None and principal.role not in {*roles, "admin"}:
        detail = {"message": f"role {principal.role!r} may not see this page", "field": "role",
                  "value": principal.role, "valid": ", ".join(sorted({*roles, "admin"}))}
        if _wants_html(request):
            rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(detail[k]))}</td></tr>"
                           for k in ("field", "value", "valid"))
            message = html.escape(str(detail["message"]))
            return _html("403", f'<h1>403</h1><p class="error">{message}</p>'
                         f"<table>{rows}</table><p><a href=\"/maps\">/maps</a> · "
                         '<a href="/maps/logout">退出 / sign out</a></p>', 403)
        return JSONResponse({"detail": detail}, status_code=403)
    return principal


def _page(request: Request, session: SessionDep, settings: SettingsDep, kind: str,
          path_value: Any = None) -> Response:
    module = pages.PAGES.get(kind)
    caller = _authorize(request, session, getattr(module, "ROLES", None))
    if isinstance(caller, Response):
        return caller
    query = request.query_params
    raw: dict[str, Any] = {}
    for key in query:
        if key not in pages.COMMON_PARAMS:
            values = query.getlist(key)
            raw[key] = values[0] if len(values) == 1 else values
    if path_value is not None:
        name = PATH_FIELDS[kind]
        if name in raw:  # which one is meant? the path names the page's subject
            return _error(request, InvalidInput(
                f"{name} is in the path ({path_value}) and in the query ({raw[name]})",
                field=name, value=raw[name], valid=f"{name} in the path only"))
        raw[name] = path_value
    for key in ("basemap", "lang"):  # the page's own parameters are checked by its model
        given = query.getlist(key)
        if len(given) > 1:
            return _error(request, InvalidInput(
                f"{key} is given {len(given)} times ({', '.join(given)})", field=key,
                value=given, valid=f"one {key}"))
    try:
        body = pages.render(session, settings, kind, raw, basemap=query.get("basemap"),
                            lang=query.get("lang"))
    except DomainError as exc:
        return _error(request, exc)
    return HTMLResponse(body)


@router.get("/login", response_class=HTMLResponse)
def login_form(next: str | None = None) -> HTMLResponse:
    """The sign-in form: paste an API token (from `patrolgrid users create`). Its message is
    only ever the server's (an ``error`` in the URL would let a link put words in it)."""
    return login_page(next)


def login_page(next: str | None = None, error: str | None = None, *,
               status: int | None = None) -> HTMLResponse:
    """The sign-in form, with the server's ``error`` (401 then, or ``status``)."""
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return _html("patrolgrid 登录", f"""<h1>patrolgrid 地图 · maps</h1>{message}
<form method="post" action="/maps/login">
<p><label>令牌 / API token<br><input name="token" type="password" autocomplete="off"
 required autofocus></label></p>
<input type="hidden" name="next" value="{html.escape(_safe_next(next))}">
<p><button type="submit">登录 / Sign in</button></p></form>""",
                 status or (401 if error else 200))


@router.post("/login", response_model=None)
def login(request: Request, session: SessionDep, token: Annotated[str | None, Form()] = None,
          next: Annotated[str | None, Form()] = None) -> Response:
    """Check the token and keep it in an HttpOnly cookie; back to the page asked for. No
    token is the form again with a message (422), as a browser expects, not JSON."""
    if token is None or not token.strip():
        return login_page(next, error="token: 请粘贴一个 API 令牌 / paste an API token",
                          status=422)
    if authenticate(session, token.strip()) is None:
        return login_page(next, error="token: 令牌无效或已撤销 / unknown or revoked token")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token.strip(), max_age=COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@router.get("/logout", response_model=None)
def logout() -> Response:
    """Forget the cookie."""
    response = RedirectResponse("/maps/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(COOKIE, path="/maps")  # set by earlier versions
    return response


@router.get("", response_model=None)
def index(request: Request, session: SessionDep, lang: str | None = None) -> Response:
    """The list of map pages (titles in ``lang``, zh or en; the links carry it on)."""
    caller = _authorize(request, session, None)
    if isinstance(caller, Response):
        return caller
    try:
        lang = check_lang(lang)
    except InvalidInput as exc:
        return _error(request, exc)
    mine = [(kind, module) for kind, module in sorted(pages.PAGES.items())
            if getattr(module, "ROLES", None) is None
            or caller.role in {*module.ROLES, "admin"}]  # only pages this role may open
    needs = {kind: [f.alias or name for name, f in module.Params.model_fields.items()
                    if f.is_required()] for kind, module in mine if kind not in PATH_FIELDS}
    # opened with ?access_token= (a link in a message, no sign-in): the links carry it on
    token = request.query_params.get("access_token")
    carried = ({"access_token": token} if token else {}) | ({"lang": lang} if lang != "zh"
                                                             else {})
    keep = f"?{urlencode(carried)}" if carried else ""
    items = "".join(f'<li><a href="/maps/{kind}{html.escape(keep)}">'
                    f"{html.escape(_title(module, lang))}</a> "
                    f"<code>{kind}</code></li>" for kind, module in mine
                    if kind not in PATH_FIELDS and not needs[kind])
    items += "".join(f"<li>{html.escape(_title(module, lang))} <code>/maps/{kind}?" + "&amp;".join(
                     f"{n}={{{n}}}" for n in needs[kind]) + "</code></li>"
                     for kind, module in mine if kind not in PATH_FIELDS and needs[kind])
    items += "".join(f"<li>{html.escape(_title(module, lang))} <code>/maps/{kind}/{{"
                     f"{PATH_FIELDS[kind]}}}</code></li>"
                     for kind, module in mine if kind in PATH_FIELDS)
    return _html("patrolgrid 地图", f"<h1>patrolgrid 地图 · maps</h1><p>{html.escape(caller.name)}"
                 f' (<a href="/maps/logout">退出 / sign out</a>)</p><ul>{items}</ul>')


def _title(module: Any, lang: str = "zh") -> str:
    title = module.TITLE
    return title if isinstance(title, str) else str(title.get(lang) or title.get("zh"))


@router.get("/routes/{team}", response_model=None)
def routes_page(request: Request, session: SessionDep, settings: SettingsDep,
                team: str) -> Response:
    """A patrol team's route map for a day (``?date=``)."""
    return _page(request, session, settings, "routes", team)


@router.get("/dispatch/{incident_id}", response_model=None)
def dispatch_page(request: Request, session: SessionDep, settings: SettingsDep,
                  incident_id: str) -> Response:
    """An incident, its grid chain, its responsible worker and the nearest on-duty workers."""
    return _page(request, session, settings, "dispatch", incident_id)


@router.get("/{kind}", response_model=None)
def map_page(request: Request, session: SessionDep, settings: SettingsDep,
             kind: str) -> Response:
    """Any registered page by its kind (``heatmap``, ``hexbins``, ``grids``, ...)."""
    return _page(request, session, settings, kind)


@router.get("/{kind}/{rest:path}", response_model=None)
def no_such_page(request: Request, session: SessionDep, kind: str, rest: str) -> Response:
    """A path below a page that has none: a 404 naming it (an HTML page for browsers),
    for a signed-in caller like every map page."""
    caller = _authorize(request, session, None)
    if isinstance(caller, Response):
        return caller
    with_path = sorted(f"/maps/{k}/{{{PATH_FIELDS[k]}}}" for k in PATH_FIELDS)
    return _error(request, NotFound(f"there is no map page at /maps/{kind}/{rest}",
                                    field="path", value=f"/maps/{kind}/{rest}",
                                    valid="/maps/<page> (see /maps), or " + ", ".join(with_path)))
