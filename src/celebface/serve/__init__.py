"""``celebface serve``: a REST API and a web page over a gallery.

``create_app(ServeConfig(gallery=...))`` builds the FastAPI application (FastAPI is imported only
here, never by ``import celebface``); :class:`ServeConfig` needs no web packages.
"""

from __future__ import annotations

from typing import Any

from celebface.serve.config import API_KEY_ENV, ServeConfig

__all__ = ["API_KEY_ENV", "ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from celebface.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'celebface.serve' has no attribute {name!r}")
