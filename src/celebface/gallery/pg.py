"""A gallery in PostgreSQL, shared by several servers and ``celebface enroll`` runs.

One gallery per database: the ``gallery`` row (embedder spec, thresholds, calibration, info and
a ``version`` counter), ``people`` and ``photos`` (source and float32 vector per enrolled face).
The schema is created and upgraded by the numbered SQL files in ``migrations/``, recorded in
``schema_version``. Writers take a session advisory lock (released by the server when a writer's
connection dies, so a killed writer never blocks the others), re-read, and write the edited
gallery's rows in one transaction that also increments ``version``: a crash at any moment
leaves the last committed gallery. Readers poll ``version`` (one indexed row) to see changes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from celebface.gallery.store import (
    Gallery,
    GalleryError,
    GalleryStore,
    MissingGalleryError,
    StoreBusyError,
    StoreUnavailableError,
    photo_id,
    redact,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: pg_advisory_lock keys (per database): writers of the gallery; schema migrations
WRITE_LOCK = 0x63656C66_01
MIGRATE_LOCK = 0x63656C66_02


def migrations() -> list[tuple[int, str, str]]:
    """``(number, file name, SQL)`` of every migration, in order."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        number = re.match(r"(\d+)_", path.name)
        if number:
            found.append((int(number.group(1)), path.name, path.read_text(encoding="utf-8")))
    return found


def password_of(url: str) -> str | None:
    """The password a connection URL carries (userinfo or ``?password=``), else None."""
    try:
        parts = urlsplit(url)
        given = parse_qs(parts.query).get("password")
        return parts.password or (given[0] if given else None)
    except ValueError:  # a URL urlsplit cannot read (postgresql://[bad): no password found
        return None


class PgStore(GalleryStore):
    """The gallery in the PostgreSQL database at ``url`` (created on first use)."""

    def __init__(self, url: str, connect_timeout: int = 10):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise GalleryError(f"a PostgreSQL gallery needs psycopg ({exc}); "
                               "pip install 'psycopg[binary]'") from None
        try:
            urlsplit(url).port  # noqa: B018  ValueError on a malformed URL (an unclosed "[")
            self.url = url
            self._secret = password_of(url)
            self.location = self._redact(url)
        except ValueError as exc:  # e.g. postgresql://[bad: "Invalid IPv6 URL"
            raise GalleryError("the store URL is not a valid postgresql:// URL "
                               f"({redact(str(exc))})") from None
        self.connect_timeout = connect_timeout
        self._held = threading.local()  # the connection holding the write lock, per thread
        self._shared: Any = None  # for reads outside a lock, one at a time
        self._shared_lock = threading.Lock()
        self._migrated = False

    # ------------------------------------------------------------ connections
    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True,
                                   connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"{self.location}: cannot connect: {self._reason(exc)}"
                                        ) from None
        if not self._migrated:
            try:
                migrate(conn, self.location)
            except BaseException:
                conn.close()
                raise
            self._migrated = True
        return conn

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """The connection this thread's lock holds, else the shared one (reconnected once if
        the server dropped it)."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        import psycopg

        with self._shared_lock:
            if self._shared is None or self._shared.closed:
                self._shared = self._connect()
            try:
                yield self._shared
            except psycopg.OperationalError as exc:  # connection lost: reconnect next time
                self._shared.close()
                self._shared = None
                raise StoreUnavailableError(f"{self.location}: {self._reason(exc)}") from None

    def _redact(self, text: str) -> str:
        return redact(text, self._secret)

    def _reason(self, exc: BaseException) -> str:
        """:func:`first_line` of a driver error, without the password."""
        return self._redact(first_line(exc))

    def close(self) -> None:
        with self._shared_lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None

    # ------------------------------------------------------------ GalleryStore
    def exists(self) -> bool:
        return self.version() is not None

    def version(self) -> Hashable | None:
        with self._conn() as conn:
            row = conn.execute("SELECT version FROM gallery WHERE id = 1").fetchone()
        return None if row is None else int(row[0])

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """The writers' advisory lock, waited for at most ``timeout`` seconds (then
        :class:`StoreBusyError`); with a timeout every statement of the edit is bounded by
        it too, so a stalled database rolls the edit back instead of applying it late."""
        if getattr(self._held, "conn", None) is not None:  # re-entrant
            yield
            return
        import psycopg

        conn = self._connect()
        try:
            if timeout is not None:
                ms = max(1, round(timeout * 1000))
                conn.execute(f"SET lock_timeout = {ms}")
                conn.execute(f"SET statement_timeout = {ms}")
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_LOCK,)).fetchone()[0]:
                log.warning("gallery %s is being updated by another writer: waiting for it",
                            self.location)
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
                except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
                    raise StoreBusyError(f"{self.location} is being updated by another writer "
                                         f"(waited {timeout:g} s)") from None
            self._held.conn = conn
            yield
        except psycopg.errors.QueryCanceled as exc:  # the edit ran past the timeout
            raise StoreBusyError(f"{self.location}: the edit took too long and was rolled back "
                                 f"({self._reason(exc)})") from None
        except psycopg.OperationalError as exc:  # the server went away mid-edit
            raise StoreUnavailableError(f"{self.location}: {self._reason(exc)}") from None
        finally:
            self._held.conn = None
            conn.close()  # ends the session: the advisory lock goes with it

    def load(self) -> Gallery:
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            head = conn.execute("SELECT dim, embedder, thresholds, calibration, info "
                                "FROM gallery WHERE id = 1").fetchone()
            if head is None:
                raise MissingGalleryError(f"{self.location}: no gallery in this database yet")
            names = [r[0] for r in conn.execute("SELECT name FROM people ORDER BY position")]
            rows = conn.execute("SELECT person, source, vector FROM photos "
                                "ORDER BY position").fetchall()
        dim, embedder, thresholds, calibration, info = head
        bad = [i for i, r in enumerate(rows) if len(bytes(r[2])) != 4 * dim]
        if bad:
            raise GalleryError(f"{self.location}: {len(bad)} stored vector(s) are not {dim}-d "
                               f"(damaged; photo row {bad[0]}, source {rows[bad[0]][1]!r})")
        vectors = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype="<f4")
        return Gallery(
            names=names,
            embeddings=vectors.reshape(len(rows), dim).astype(np.float32),
            labels=np.array([r[0] for r in rows], np.int32),
            sources=[r[1] for r in rows],
            embedder=dict(embedder or {}),
            thresholds={k: float(v) for k, v in (thresholds or {}).items()},
            calibration=dict(calibration or {}),
            info=dict(info or {}),
        )

    def save(self, gallery: Gallery) -> None:
        """Write ``gallery``'s rows in one transaction and increment the version."""
        from psycopg.types.json import Jsonb

        with self.lock(), self._conn() as conn, conn.transaction():
            conn.execute("DELETE FROM photos")
            conn.execute("DELETE FROM people")
            cur = conn.cursor()
            with cur.copy("COPY people (position, name) FROM STDIN") as copy:
                for i, name in enumerate(gallery.names):
                    copy.write_row((i, name))
            vectors = np.ascontiguousarray(gallery.embeddings, dtype="<f4")
            with cur.copy("COPY photos (position, person, source, vector) FROM STDIN") as copy:
                for i, (label, source) in enumerate(zip(gallery.labels, gallery.sources,
                                                        strict=True)):
                    copy.write_row((i, int(label), source, vectors[i].tobytes()))
            meta = (gallery.dim, Jsonb(gallery.embedder), Jsonb(gallery.thresholds),
                    Jsonb(gallery.calibration), Jsonb(gallery.info))
            conn.execute(
                "INSERT INTO gallery (id, version, dim, embedder, thresholds, calibration, info) "
                "VALUES (1, 1, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "version = gallery.version + 1, dim = EXCLUDED.dim, "
                "embedder = EXCLUDED.embedder, thresholds = EXCLUDED.thresholds, "
                "calibration = EXCLUDED.calibration, info = EXCLUDED.info, updated_at = now()",
                meta)
            # thumbnails of photos no longer in the gallery go
            conn.execute("DELETE FROM thumbnails WHERE NOT (photo = ANY(%s))",
                         (sorted({photo_id(s) for s in gallery.sources}),))
        log.debug("saved gallery %s: %d identities, %d embeddings", self.location,
                  len(gallery.names), len(gallery))


    def thumbnails(self, ids: Sequence[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute("SELECT photo, jpeg FROM thumbnails WHERE photo = ANY(%s)",
                                (list(ids),)).fetchall()
        return {r[0]: bytes(r[1]) for r in rows}

    def put_thumbnails(self, jpegs: dict[str, bytes]) -> None:
        if not jpegs:
            return
        with self._conn() as conn, conn.transaction():
            conn.cursor().executemany(
                "INSERT INTO thumbnails (photo, jpeg) VALUES (%s, %s) ON CONFLICT (photo) "
                "DO UPDATE SET jpeg = EXCLUDED.jpeg", list(jpegs.items()))


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (the rest is context for a log, not a message)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def migrate(conn: Any, location: str) -> int:
    """Bring the database's schema up to date (one migrator at a time); returns its version."""
    import psycopg

    known = migrations()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                     "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r[0] for r in conn.execute("SELECT version FROM schema_version")}
        newest = max((n for n, _, _ in known), default=0)
        if done and max(done) > newest:
            raise GalleryError(f"{location}: gallery schema {max(done)} is newer than this "
                               f"celebface understands ({newest}); upgrade celebface")
        for number, name, sql in known:
            if number not in done:
                try:
                    conn.execute(sql)
                except (psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject) as exc:
                    raise GalleryError(
                        f"{location}: the database already holds tables of another "
                        f"application ({redact(first_line(exc))}); give celebface a database "
                        "of its own"
                    ) from None
                conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                             (number, name))
                log.info("%s: applied gallery migration %s", location, name)
    return newest
