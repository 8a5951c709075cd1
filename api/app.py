"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import storable_json_body
from api.errors import add_exception_handlers
from api.guards import BodyLimit, HeadAsGet, QueryTextGuard
from api.jobs import lifespan
from api.openapi import install as install_openapi
from api.routers import categories as categories_router
from api.routers import coverage as coverage_router
from api.routers import grid_import, grids, health, incident_bulk, incident_loop, locate, roster
from api.routers import incidents as incidents_router
from api.routers import maps as maps_router
from api.routers import open311 as open311_router
from api.routers import plans as plans_router
from api.routers import routes as routes_router
from api.routers import tasks as tasks_router
from api.routers import tracks as tracks_router
from api.uploads import known_query_params
from geo.settings import Settings, get_settings
from maps.assets import VENDOR_DIR

API_PREFIX = "/api/v1"

DESCRIPTION = """
Grid governance (网格化管理) for a city: versioned grid polygons, the roster of
grid workers and patrols, point location to grid and responsible worker.

Coordinates are always **(lon, lat)**, in WGS-84 unless a `crs` parameter says
`gcj02`, `bd09` or `cgcs2000`. Every endpoint but `/healthz` needs
`Authorization: Bearer <token>` (make one with `patrolgrid users create`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (the environment's when omitted)."""
    settings = settings or get_settings()
    app = FastAPI(title="patrolgrid", version="0.1.0", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  dependencies=[Depends(storable_json_body), Depends(known_query_params)])
    app.state.settings = settings
    add_exception_handlers(app)
    app.add_middleware(QueryTextGuard)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_mb << 20)
    app.add_middleware(HeadAsGet)
    app.include_router(health.router)
    app.include_router(grids.router, prefix=API_PREFIX)
    app.include_router(grid_import.router, prefix=API_PREFIX)
    app.include_router(locate.router, prefix=API_PREFIX)
    app.include_router(roster.router, prefix=API_PREFIX)
    app.include_router(incidents_router.router, prefix=API_PREFIX)
    app.include_router(categories_router.router, prefix=API_PREFIX)
    app.include_router(incident_loop.router, prefix=API_PREFIX)
    app.include_router(incident_bulk.router, prefix=API_PREFIX)
    app.include_router(open311_router.router)
    app.include_router(routes_router.router, prefix=API_PREFIX)
    app.include_router(tracks_router.router, prefix=API_PREFIX)
    app.include_router(coverage_router.router, prefix=API_PREFIX)
    app.include_router(tasks_router.router, prefix=API_PREFIX)
    app.include_router(plans_router.router, prefix=API_PREFIX)
    app.include_router(maps_router.router)
    _mount_docs(app)
    install_openapi(app)
    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI served from our own copy of swagger-ui-dist (installed by `make setup`)."""
    app.mount("/vendor", StaticFiles(directory=VENDOR_DIR, check_dir=False), name="vendor")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="patrolgrid API",
            swagger_js_url="/vendor/swagger-ui-dist/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui-dist/swagger-ui.css",
            swagger_favicon_url="/vendor/swagger-ui-dist/favicon-32x32.png",
        )
