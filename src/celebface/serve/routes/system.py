"""The server's own routes: ``/health``, ``/metrics``, the page (``/``) and the offline API
docs (``/docs``, :func:`add_docs`)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from celebface.serve import schemas
from celebface.serve.deps import READ, Auth, Key, Service, get_metrics, scope_of
from celebface.serve.metrics import Metrics
from celebface.serve.schemas import errors

STATIC = Path(__file__).parent.with_name("static")
router = APIRouter()


@router.get("/health", response_model=schemas.HealthOut, response_model_exclude_none=True,
            summary="Liveness; gallery size and threshold with a key", responses=errors(400))
async def health(request: Request, service: Service, key: Key = None, auth: Auth = None
                 ) -> dict[str, Any]:
    """`{"status": "ok"}`; the gallery's size and threshold too when keys are off or a
    valid key is sent."""
    scope = scope_of(request, key, auth) if request.app.state.keys else "admin"
    if scope is None:
        return {"status": "ok"}
    return {"status": "ok", "scope": scope, **service.status()}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
            dependencies=[READ], responses=errors(400, 401))
async def prometheus(service: Service, metrics: Annotated[Metrics, Depends(get_metrics)]
                     ) -> str:
    s = service.status()
    return metrics.render({"gallery_identities": s["identities"],
                           "gallery_embeddings": s["embeddings"], "workers": s["workers"]})


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


async def swagger() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="celebface API",
                               swagger_js_url="/docs-static/swagger-ui-bundle.js",
                               swagger_css_url="/docs-static/swagger-ui.css",
                               swagger_favicon_url="/docs-static/favicon.png")


def add_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) with its files served from the installed ``fastapi-offline``
    package (no network needed; there is no ``/redoc``: ReDoc fetches its logo from a CDN),
    and an OpenAPI document without the 422 FastAPI adds by default (this API answers bad
    parameters with 400)."""
    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")
    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            for path in schema.get("paths", {}).values():
                for op in path.values():
                    op.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
