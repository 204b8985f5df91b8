"""`celebface serve`: a REST API and a web page over a gallery."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os

from celebface.cli.common import add_device
from celebface.cli.main import CLIError
from celebface.cli.options import add_option, config_from
from celebface.gallery.matching import MATCH_METHODS
from celebface.serve.config import API_KEY_ENV, ServeConfig, default_workers

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Serve GALLERY over HTTP: a web page at / (drop a photo or use the camera, manage "
        "people), the API under /v1 (recognize, verify, people; docs at /docs), /health and "
        "/metrics. Binds 127.0.0.1 unless --host says otherwise; with an API key every /v1 "
        "call must send it. The gallery is created by the first enrolment if missing."
    )
    p.add_argument("gallery", metavar="GALLERY", nargs="?",
                   help="gallery folder (celebface enroll)")
    add_option(p, ServeConfig, "store", metavar="URL",
               help="serve the gallery in a PostgreSQL database instead of GALLERY "
               "(postgresql://user@host/db); several servers may share it")
    add_option(p, ServeConfig, "model", metavar="DIR",
               help="name faces with a trained classifier instead (gallery edits refused)")
    add_option(p, ServeConfig, "host", help="address to bind (default %(default)s)")
    add_option(p, ServeConfig, "port", help="port (default %(default)s)")
    add_option(p, ServeConfig, "api_key", metavar="KEY",
               help=f"require this key on /v1 (default: ${API_KEY_ENV}, else none)")
    add_option(p, ServeConfig, "max_body_mb", metavar="MB",
               help="larger request bodies get 413 (default %(default)g)")
    add_option(p, ServeConfig, "max_side", metavar="PX",
               help="photos are decoded shrunk to this longer side (default %(default)s)")
    add_option(p, ServeConfig, "workers", metavar="N",
               help=f"inference threads (default: the cores, {default_workers()} here)")
    add_option(p, ServeConfig, "torch_threads", "--threads", metavar="N",
               help="torch threads (default: cores // workers)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN call the API (repeatable; default: none)")
    add_option(p, ServeConfig, "match", choices=MATCH_METHODS,
               help="match method (default %(default)s)")
    add_option(p, ServeConfig, "threshold",
               help="unknown threshold (default: the gallery's calibrated one)")
    add_option(p, ServeConfig, "detector", help="mtcnn (default) or hog")
    add_device(p, threads=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from celebface.serve.app import create_app
    except ImportError as exc:
        raise CLIError(f"serve needs fastapi, uvicorn and python-multipart ({exc}); "
                       "pip install -r requirements.txt") from None
    from celebface.cli.gallery import store_or_folder

    store_or_folder(args.store, args.gallery, "GALLERY")  # exactly one of them
    if args.store is not None:
        from celebface.gallery.store import open_store

        open_store(args.store).version()  # unreachable: one line now, not a startup traceback
        args.gallery = "gallery"  # unused: the store holds the gallery
    workers = args.workers or default_workers()
    config = config_from(
        ServeConfig, args, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        workers=workers, torch_threads=args.torch_threads or max(1, default_workers() // workers),
        cors_origins=tuple(args.cors_origin),
    )
    if not _is_loopback(config.host) and not config.api_key:
        log.warning("listening on %s without an API key: anyone who can reach it can read and "
                    "edit the gallery (set --api-key or $%s)", config.host, API_KEY_ENV)
    print(f"serve: http://{config.host}:{config.port}/ (API docs at /docs); Ctrl-C stops")
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=30)
    return 0
