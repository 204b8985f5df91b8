"""`celebface serve`: a REST API and a web page over a gallery."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.gallery import store_or_folder
from celebface.cli.main import CLIError
from celebface.cli.options import add_option, config_from
from celebface.gallery import Gallery
from celebface.gallery.matching import MATCH_METHODS
from celebface.gallery.store import is_gallery
from celebface.gallery.stores import open_store
from celebface.serve.config import (
    API_KEY_ENV,
    MAX_QUEUE,
    RECOGNIZE_KEY_ENV,
    ServeConfig,
    default_workers,
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Serve GALLERY over HTTP: a web page at / (drop a photo or use the camera, manage "
        "people), the API under /v1 (recognize, detect, embed, verify, people and their photos; "
        "docs at /docs, offline), /health and /metrics. Binds 127.0.0.1 unless --host says "
        "otherwise (another address needs a key, or --insecure); with keys every /v1 call and "
        "/metrics must send one. The gallery is created by the first enrolment if missing."
    )
    p.set_defaults(_exit_at_once=True)  # SIGTERM: out in well under 2 s
    p.add_argument("gallery", metavar="GALLERY", nargs="?",
                   help="gallery folder (celebface enroll)")
    add_option(p, ServeConfig, "store", metavar="URL",
               help="serve the gallery in a PostgreSQL database instead of GALLERY "
               "(postgresql://user@host/db); several servers may share it")
    add_option(p, ServeConfig, "model", metavar="DIR",
               help="name faces with a trained classifier instead (gallery edits refused)")
    add_option(p, ServeConfig, "host", help="address to bind (default %(default)s)")
    add_option(p, ServeConfig, "port", type=t.int_range(1, 65535),
               help="port, 1-65535 (default %(default)s)")
    add_option(p, ServeConfig, "api_key", metavar="KEY",
               help=f"admin key: may do everything (default: ${API_KEY_ENV}, else none)")
    p.add_argument("--recognize-key", action="append", default=[], metavar="KEY",
                   help="a key that may recognise but not edit people "
                   f"(repeatable; default: ${RECOGNIZE_KEY_ENV}, comma-separated)")
    add_option(p, ServeConfig, "keys_file", metavar="FILE",
               help="more keys, one 'KEY recognize|admin' a line")
    add_option(p, ServeConfig, "max_body_mb", metavar="MB", type=t.positive_float,
               help="larger request bodies get 413 (default %(default)g)")
    add_option(p, ServeConfig, "max_image_mb", metavar="MB", type=t.positive_float,
               help="larger images get 413 (default %(default)g)")
    add_option(p, ServeConfig, "max_video_mb", metavar="MB", type=t.positive_float,
               help="larger video uploads (the video page) get 413 (default %(default)g)")
    add_option(p, ServeConfig, "max_pixels", metavar="N", type=t.positive_int,
               help="images of more pixels get 413, from their header (default %(default)s)")
    add_option(p, ServeConfig, "max_decodes", metavar="N", type=t.positive_int,
               help="images decoded at once (default %(default)s)")
    add_option(p, ServeConfig, "max_side", metavar="PX", type=t.pixels,
               help="photos are decoded shrunk to this longer side (default %(default)s)")
    add_option(p, ServeConfig, "workers", metavar="N", type=t.int_range(0, 256),
               help=f"inference threads (default: the cores, {default_workers()} here)")
    add_option(p, ServeConfig, "queue", metavar="N", type=t.int_range(0, MAX_QUEUE),
               help="requests that may wait for a worker; more get 503 (default %(default)s)")
    add_option(p, ServeConfig, "edit_timeout", metavar="S", type=t.float_range(0.1, 3600),
               help="seconds a gallery edit waits for another writer's lock; then 503 and "
               "nothing applied (default %(default)g; keep it below the clients' timeout)")
    add_option(p, ServeConfig, "max_videos", metavar="N", type=t.int_range(1, 1000),
               help="video jobs queued or running at once; more uploads get 503 "
               "(default %(default)s)")
    add_option(p, ServeConfig, "torch_threads", "--threads", metavar="N",
               type=t.int_range(0, 256), help="torch threads (default: cores // workers)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN call the API (repeatable; default: none; "
                   "other sites' writes are refused)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer to this Host name (repeatable; "
                   "default: the bound address and localhost; * for any)")
    add_option(p, ServeConfig, "insecure",
               help="allow a non-loopback --host without a key (anyone who can reach it can "
               "edit the gallery)")
    add_option(p, ServeConfig, "match", choices=MATCH_METHODS,
               help="match method (default %(default)s)")
    add_option(p, ServeConfig, "threshold", type=t.probability,
               help="unknown threshold, 0 to 1 (default: the gallery's calibrated one)")
    t.add_detector(p, ServeConfig)
    t.add_detector(p, ServeConfig, field="video_detector", flag="--video-detector",
                   what="the video page's face detector")
    add_device(p, threads=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_gallery(config: ServeConfig) -> None:
    """Refuse a GALLERY that is a file or a damaged gallery before the server starts."""

    path = config.gallery
    if path.exists() and not path.is_dir():
        raise CLIError(f"{path}: not a gallery folder (a file)")
    if config.model is None and is_gallery(path):
        Gallery.load(path)  # a damaged gallery: GalleryError, one line


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi_offline  # noqa: F401 - /docs serves its Swagger UI files
        import uvicorn

        from celebface.serve.app import create_app
    except ImportError as exc:
        raise CLIError(f"serve needs fastapi, uvicorn, python-multipart and fastapi-offline "
                       f"({exc}); pip install -r requirements.txt") from None

    store_or_folder(args.store, args.gallery, "GALLERY")  # exactly one of them
    if args.store is not None:

        open_store(args.store).version()  # unreachable: one line now, not a startup traceback
        args.gallery = "gallery"  # unused: the store holds the gallery
    workers = args.workers or default_workers()
    env_keys = os.environ.get(RECOGNIZE_KEY_ENV, "")
    config = config_from(
        ServeConfig, args, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        recognize_keys=tuple(args.recognize_key or env_keys.split(",")),
        workers=workers, torch_threads=args.torch_threads or max(1, default_workers() // workers),
        cors_origins=tuple(args.cors_origin), allowed_hosts=tuple(args.allowed_host),
    )
    keys = config.keys()  # a bad keys file: one line, before anything starts
    if not _is_loopback(config.host) and not keys:
        if not config.insecure:
            raise CLIError(f"--host {config.host} without an API key would let anyone who can "
                           f"reach it read and edit the gallery: set --api-key (or ${API_KEY_ENV}"
                           ", --keys-file), or pass --insecure")
        log.warning("listening on %s without an API key (--insecure): anyone who can reach it "
                    "can read and edit the gallery", config.host)
    _check_gallery(config)
    print(f"serve: http://{config.host}:{config.port}/ (API docs at /docs); Ctrl-C stops")
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=30)
    return 0
