"""Open311 GeoReport v2 (JSON) over our categories and incidents.

``GET /open311/discovery.json``, ``GET /open311/v2/services.json``,
``GET /open311/v2/services/{service_code}.json``, ``POST /open311/v2/requests.json``,
``GET /open311/v2/requests.json`` and ``GET /open311/v2/requests/{id}.json``.
The mapping is :mod:`geo.open311`; a POST goes through the same validation and
intake as ``POST /api/v1/incidents``.

Errors come in GeoReport's format, a list ``[{"code", "description"}]`` (with
``field``, ``value`` and ``valid`` added), with the HTTP status as ``code``:
400 bad input, 401 missing ``api_key``, 403 unknown ``api_key``, 404 unknown service or request,
409 a conflict. ``api_key`` is one of our API tokens (``patrolgrid users
create``), of any role. The GETs are public unless ``PATROLGRID_OPEN311_PUBLIC_READ``
is false.

Each endpoint opens its own transaction (``session_scope``): a POST is committed
before it answers 201, and rolled back whole when it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Form, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import REPORTER_ROLES
from api.deps import SettingsDep
from api.errors import unreadable_body
from geo import open311
from geo.errors import DomainError, InvalidInput
from geo.incidents.intake import register
from geo.incidents.replay import check_replay
from geo.incidents.schema import validate_incident
from geo.index_cache import index_for_intake
from geo.settings import Settings
from geo.store import open311 as store
from geo.store.db import session_scope
from geo.store.users import Principal, authenticate


class GeoReportRoute(APIRoute):
    """A route whose errors are answered in GeoReport's error format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler: domain, validation and HTTP errors become ``[{code, description}]``."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if _content_type(request) == URLENCODED:
                await request.body()  # kept: the form is read again as UTF-8 (_urlencoded)
            try:
                return await handler(request)
            except DomainError as exc:
                code, body = open311.domain_error_body(exc)
                return JSONResponse(body, status_code=code)
            except RequestValidationError as exc:
                err = exc.errors()[0] if exc.errors() else {}
                loc = [str(p) for p in err.get("loc", ())
                       if p not in ("query", "path", "body", "form")]
                field = ".".join(loc) or "request"
                return JSONResponse(open311.error_body(
                    400, f"{field}: {err.get('msg', 'invalid')}", field=field,
                    value=_plain(err.get("input"))), status_code=400)
            except StarletteHTTPException as exc:  # FastAPI's and Starlette's (form parsing)
                detail = (exc.detail if isinstance(exc.detail, dict)
                          else unreadable_body(request, exc.detail) if exc.status_code == 400
                          else {"message": exc.detail})
                body = open311.error_body(exc.status_code, str(detail.get("message")),
                                          field=detail.get("field"), value=detail.get("value"),
                                          valid=detail.get("valid"))
                return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

        return route


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else str(value)


router = APIRouter(prefix="/open311", tags=["open311"], route_class=GeoReportRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"example": [
        {"code": code, "description": example}]}}}
    for code, text, example in (
        (400, "Bad input: the description names the field, the value and what is valid",
         "long: lon must be a finite number, got 'east'"),
        (401, "api_key missing", "api_key is required: send one of your API tokens"),
        (403, "api_key unknown or revoked", "api_key is unknown or revoked"),
        (404, "No such service or request", "there is no service request 42"),
    )
}


def _forbidden(message: str, value: str | None) -> HTTPException:
    return HTTPException(status_code=403, detail={
        "message": message, "field": "api_key", "value": value,
        "valid": "an API token from `patrolgrid users create`"})


def _key(api_key: str | None, authorization: str | None) -> str | None:
    if api_key:
        return api_key.strip()
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _principal(session: Any, key: str | None) -> Principal:
    if not key:
        # no credentials at all: 401 like every other endpoint (GeoReport's 403 is kept for
        # a key that is wrong)
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"}, detail={
            "message": "api_key is required: send one of your API tokens",
            "field": "api_key", "value": None,
            "valid": "an API token from `patrolgrid users create`"})
    principal = authenticate(session, key)
    if principal is None:
        raise _forbidden("api_key is unknown or revoked", key[:8] + "…")
    return principal


def _check_key(settings: Settings, api_key: str | None, authorization: str | None) -> None:
    with session_scope(settings.database_url) as session:
        _principal(session, _key(api_key, authorization))


def _reader(settings: Settings, session: Any, api_key: str | None,
            authorization: str | None) -> None:
    if not settings.open311_public_read:
        _principal(session, _key(api_key, authorization))


ApiKeyQuery = Annotated[str | None, Query(
    description="An API token; needed only when PATROLGRID_OPEN311_PUBLIC_READ is false.")]
AuthHeader = Annotated[str | None, Header(include_in_schema=False)]


@router.get("/discovery.json", responses=ERRORS)
def discovery(request: Request, settings: SettingsDep, api_key: ApiKeyQuery = None,
              authorization: AuthHeader = None) -> dict[str, Any]:
    """Open311 service discovery: where the GeoReport v2 endpoint is and what it speaks."""
    with session_scope(settings.database_url) as session:
        _reader(settings, session, api_key, authorization)
    base = str(request.base_url).rstrip("/")
    return {"changeset": "2025-01-01T00:00:00Z", "contact": "the city's dispatch centre",
            "key_service": "an API token from `patrolgrid users create` (api_key)",
            "endpoints": [{"specification": open311.SPEC_URL, "url": f"{base}/open311/v2",
                           "changeset": "2025-01-01T00:00:00Z", "type": "production",
                           "formats": ["application/json"]}]}


@router.get("/v2/services.json", responses=ERRORS)
def services(settings: SettingsDep, api_key: ApiKeyQuery = None,
             authorization: AuthHeader = None,
             jurisdiction_id: Annotated[str | None, Query(
                 description="Accepted and ignored: this server serves one city.")] = None,
             ) -> list[dict[str, Any]]:
    """Every service (one per incident category)."""
    with session_scope(settings.database_url) as session:
        _reader(settings, session, api_key, authorization)
        return [open311.service_of(c) for c in store.categories(session)]


@router.get("/v2/services/{service_code}.json", responses=ERRORS)
def service_definition(service_code: str, settings: SettingsDep, api_key: ApiKeyQuery = None,
                       authorization: AuthHeader = None) -> dict[str, Any]:
    """The definition of one service: no extra attributes are asked for."""
    with session_scope(settings.database_url) as session:
        _reader(settings, session, api_key, authorization)
        store.category(session, service_code)
    return open311.service_definition(service_code)


URLENCODED = "application/x-www-form-urlencoded"


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    """A urlencoded form as UTF-8, raw bytes and %-escapes alike (Starlette reads raw bytes
    as Latin-1, so ``curl -d 'description=暴露垃圾'`` would store mojibake). A field that is
    not UTF-8 is named, with the bytes around the fault (never those of ``api_key``)."""
    items: list[tuple[str, str]] = []
    for part in body.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            key = _utf8(name, "form", "")
            items.append((key, _utf8(value, key, key)))
    return items


def _utf8(raw: bytes, field: str, what: str) -> str:
    data = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = None if field == "api_key" else data[max(0, exc.start - 8):exc.start + 8].hex()
        where = f"the value of {what}" if what else "a field name"
        raise InvalidInput(f"{where} is not UTF-8 text: {exc.reason} at byte {exc.start} "
                           f"(after %-decoding)", field=field, value=shown,
                           valid="a form encoded as UTF-8 (raw or %-escaped)") from exc


def _one_key(items: Sequence[tuple[str, str]], in_query: Sequence[str]) -> str | None:
    """The ``api_key`` of a POST, in the form or the query (the spec allows either); two
    different ones are refused (which would be the reporter?), without showing either."""
    keys = {v.strip() for v in (*[v for k, v in items if k == "api_key"], *in_query)}
    keys.discard("")
    if len(keys) > 1:
        raise InvalidInput("api_key is given more than once, with different values",
                           field="api_key", value=None,
                           valid="one api_key, in the form or the query")
    return next(iter(keys), None)


def _form_items(form: Any) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise InvalidInput(f"{key}: file uploads are not accepted", field=key,
                               value=value.filename, valid="media_url, a link to the picture")
        items.append((key, value))
    return items


def _post(settings: Settings, items: Sequence[tuple[str, str]], api_key: str | None,
          authorization: str | None, idempotency_key: str | None) -> tuple[bool, dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        principal = _principal(session, _key(api_key, authorization))
        if principal.role not in (*REPORTER_ROLES, "admin"):
            raise HTTPException(status_code=403, detail={
                "message": f"role {principal.role!r} may not report incidents",
                "field": "api_key", "value": principal.role,
                "valid": "a token of role " + ", ".join((*REPORTER_ROLES, "admin"))})
        raw = open311.intake_fields([(k, v) for k, v in items if k != "api_key"],
                                    idempotency_key=idempotency_key)
        item = validate_incident(raw, tz=settings.tz)
        done = register(session, item, actor=f"open311:{principal.name}", settings=settings,
                        index=index_for_intake(session))
        check_replay(item, done)
    sla_hours = ((done.due_at - done.reported_at).total_seconds() / 3600
                 if done.due_at is not None else None)
    notice = open311.service_notice(sla_hours, done.due_at, settings.tz)
    return done.created, {"service_request_id": str(done.id), "service_notice": notice,
                          "account_id": None}


@router.post("/v2/requests.json", status_code=201, responses={
    **ERRORS, 200: {"description": "A retry with the same Idempotency-Key: the same request"}})
async def post_request(
    request: Request, settings: SettingsDep,
    service_code: Annotated[str | None, Form(description="The service (category) code.")] = None,
    lat: Annotated[str | None, Form(description="Latitude, decimal degrees (WGS-84).")] = None,
    long: Annotated[str | None, Form(description="Longitude, decimal degrees (WGS-84).")]
    = None,
    description: Annotated[str | None, Form(description="What is wrong.")] = None,
    api_key: Annotated[str | None, Form(description="One of our API tokens (any role).")]
    = None,
    crs: Annotated[str | None, Form(description="Not in the spec: wgs84 (default), gcj02, "
                                                "bd09 or cgcs2000.")] = None,
    address_string: Annotated[str | None, Form(description="Kept; not geocoded.")] = None,
    email: Annotated[str | None, Form()] = None,
    first_name: Annotated[str | None, Form()] = None,
    last_name: Annotated[str | None, Form()] = None,
    phone: Annotated[str | None, Form()] = None,
    device_id: Annotated[str | None, Form()] = None,
    account_id: Annotated[str | None, Form()] = None,
    media_url: Annotated[str | None, Form()] = None,
    jurisdiction_id: Annotated[str | None, Form()] = None,
    authorization: AuthHeader = None,
    idempotency_key: Annotated[str | None, Header(
        description="A retry with the same key returns the same request (200).")] = None,
) -> JSONResponse:
    """Report a service request (form-encoded, as the spec says). Answers 201 with
    ``[{service_request_id, service_notice, account_id}]``; the incident gets its grid,
    its worker and its deadline exactly as ``POST /api/v1/incidents`` gives them.
    ``attribute[<code>]`` fields and the person fields are kept with the incident, never
    shown again."""
    kind = _content_type(request)
    if kind not in (URLENCODED, "multipart/form-data"):
        # no form, so no api_key field: the credentials are checked first (401/403)
        await run_in_threadpool(_check_key, settings, request.query_params.get("api_key"),
                                authorization)
        raise InvalidInput("a service request is posted as a form", field="Content-Type",
                           value=kind or None, valid="application/x-www-form-urlencoded or "
                           "multipart/form-data")
    items = (_urlencoded(await request.body()) if kind == URLENCODED
             else _form_items(await request.form()))
    api_key = _one_key(items, request.query_params.getlist("api_key"))
    created, body = await run_in_threadpool(_post, settings, items, api_key, authorization,
                                            idempotency_key)
    return JSONResponse([body], status_code=201 if created else 200)


@router.get("/v2/requests.json", responses=ERRORS)
def get_requests(
    settings: SettingsDep,
    service_request_id: Annotated[str | None, Query(
        description="Comma-separated ids; when given, the other filters are ignored.")] = None,
    service_code: Annotated[str | None, Query(description="Comma-separated service codes.")]
    = None,
    start_date: Annotated[str | None, Query(
        description="Earliest requested_datetime (W3C); without either date: the last 90 "
                    "days.")] = None,
    end_date: Annotated[str | None, Query(description="Latest requested_datetime (W3C).")]
    = None,
    status: Annotated[str | None, Query(description="open, closed or open,closed.")] = None,
    jurisdiction_id: Annotated[str | None, Query(description="Accepted and ignored.")] = None,
    api_key: ApiKeyQuery = None, authorization: AuthHeader = None,
) -> list[dict[str, Any]]:
    """Service requests, newest first, at most ``PATROLGRID_MAX_PAGE_LIMIT`` (1000)."""
    tz = settings.tz
    query = store.RequestQuery(
        ids=open311.parse_ids(service_request_id),
        service_codes=open311.parse_codes(service_code),
        statuses=open311.parse_statuses(status),
        start=open311.parse_datetime(start_date, "start_date", tz),
        end=open311.parse_datetime(end_date, "end_date", tz),
        limit=settings.max_page_limit)
    with session_scope(settings.database_url) as session:
        _reader(settings, session, api_key, authorization)
        if query.service_codes:
            store.check_service_codes(session, query.service_codes)
        rows = store.requests(session, query)
    return [open311.request_of(r, tz) for r in rows]


@router.get("/v2/requests/{service_request_id}.json", responses=ERRORS)
def get_request(service_request_id: str, settings: SettingsDep, api_key: ApiKeyQuery = None,
                authorization: AuthHeader = None) -> list[dict[str, Any]]:
    """One service request (a list of one, as the spec says)."""
    ids = open311.parse_ids(service_request_id) or []
    if len(ids) != 1:
        raise InvalidInput("one service_request_id is expected", field="service_request_id",
                           value=service_request_id, valid="one request id")
    with session_scope(settings.database_url) as session:
        _reader(settings, session, api_key, authorization)
        row = store.request(session, ids[0])
    return [open311.request_of(row, settings.tz)]


@router.get("/v2/{rest:path}", include_in_schema=False)
def unknown(rest: str, settings: SettingsDep, api_key: ApiKeyQuery = None,
            authorization: AuthHeader = None) -> None:
    """Anything else under /open311/v2: a GeoReport 404 listing what there is."""
    with session_scope(settings.database_url) as session:
        _reader(settings, session, api_key, authorization)
    raise HTTPException(status_code=404, detail={
        "message": f"/open311/v2/{rest} is not a GeoReport v2 resource here (JSON only)",
        "field": "path", "value": rest,
        "valid": "services.json, services/<code>.json, requests.json, requests/<id>.json"})
