"""Reliability round three (issue 31, defects 8-10 and the "Poor" list): each case replayed,
each a one-line refusal or a correct result."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from celebface.validate import ConfigError
from test_faults_round2 import cli


# ------------------------------------------------------------------ serve settings
def test_recognize_keys_with_spaces_are_stripped() -> None:
    """CELEBFACE_RECOGNIZE_KEYS='k1, k2' stored " k2", which no HTTP client can send."""
    from celebface.serve import ServeConfig

    keys = ServeConfig(recognize_keys=("k1", " k2 ", "", "")).keys()  # "k1, k2 ,,".split(",")
    assert keys == {"k1": "recognize", "k2": "recognize"}


@pytest.mark.timeout(60)  # before the fix the server started and served
def test_queue_is_range_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--queue 99999999999999999999 turned backpressure off."""
    from celebface.serve import ServeConfig

    with pytest.raises(ConfigError, match="queue"):
        ServeConfig(queue=99999999999999999999)
    code, err = cli(capsys, "serve", str(tmp_path / "g"), "--queue", "99999999999999999999")
    assert code == 2 and "--queue" in err


def test_world_writable_keys_file_is_refused(tmp_path: Path) -> None:
    from celebface.serve import ServeConfig
    from celebface.serve.config import KeyFileError

    keys = tmp_path / "keys"
    keys.write_text("s3cret admin\n")
    keys.chmod(0o600)
    assert ServeConfig(keys_file=keys).keys() == {"s3cret": "admin"}
    keys.chmod(0o666)
    with pytest.raises(KeyFileError, match=f"{keys}: .*writable by every user"):
        ServeConfig(keys_file=keys).keys()


@pytest.mark.timeout(60)
def test_world_writable_keys_file_stops_serve(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    keys.write_text("s3cret admin\n")
    os.chmod(keys, 0o646)
    code, err = cli(capsys, "serve", str(tmp_path / "g"), "--keys-file", str(keys))
    assert code == 2 and "writable by every user" in err, err


# ------------------------------------------------------------------ --from-timeline CSVs
def _timeline(folder: Path) -> bytes:
    """A timeline folder with two unknown tracks; the CSV's bytes with track 2 renamed zoe."""
    import numpy as np

    from celebface.streaming.timeline import TimelineBuilder, write_timeline
    from celebface.types import UNKNOWN, Face

    rgb = np.full((60, 60, 3), 90, np.uint8)
    b = TimelineBuilder()
    b.add(0, None, rgb, [Face((5, 5, 25, 25), 0.99, identity=UNKNOWN, similarity=0.4,
                              track_id=1),
                         Face((30, 30, 50, 50), 0.99, identity=UNKNOWN, similarity=0.4,
                              track_id=2)])
    write_timeline(folder, *b.appearances(), 0.1)
    lines = (folder / "appearances.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("unknown-2", "zoe", 1)
    assert "zoe" in lines[2]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize("damage", ["short row", "NUL", "Latin-1", "no columns"])
def test_from_timeline_damaged_csv_is_one_line(damage: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "who"
    good = _timeline(folder)
    header, first = good.split(b"\r\n")[:2]
    bad = {"short row": header + b"\r\n" + first + b"\r\n" + b"zoe,2\r\n",
           "NUL": good.replace(b"zoe", b"z\0e"),
           "Latin-1": good.replace(b"zoe", "zo\u00eb".encode("latin-1")),
           "no columns": b"\r\n"}[damage]
    (folder / "appearances.csv").write_bytes(bad)
    code, err = cli(capsys, "enroll", "--from-timeline", str(folder), "--out",
                    str(tmp_path / "g"))
    assert code == 2 and "appearances.csv" in err, err


def test_from_timeline_reads_a_bom_and_applies_the_name_rule(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from celebface.streaming.timeline import renamed_faces

    folder = tmp_path / "who"
    good = _timeline(folder)
    (folder / "appearances.csv").write_bytes(b"\xef\xbb\xbf" + good)  # as a spreadsheet saves
    assert [p for p, _ in renamed_faces(folder)] == ["zoe"]
    (folder / "appearances.csv").write_bytes(good.replace(b"zoe", "\uff35nknown".encode()))
    assert renamed_faces(folder) == []
    assert "reserved" in caplog.text


# ------------------------------------------------------------------ PostgreSQL stores
@pytest.mark.parametrize("argv", [
    ["gallery", "export", "postgresql://[bad", "OUT"],
    ["enroll", "DATA", "--store", "postgresql://u:pw@[bad/db"],
    ["serve", "--store", "postgresql://[bad"],
])
def test_malformed_store_url_is_one_line(argv: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "DATA" / "amy").mkdir(parents=True)
    argv = [str(tmp_path / a) if a in ("OUT", "DATA") else a for a in argv]
    code, err = cli(capsys, *argv)
    assert code == 2 and "not a valid postgresql:// URL" in err and "pw" not in err, err


def test_database_with_another_apps_tables_is_one_line(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    admin = os.environ.get("CELEBFACE_TEST_PG")
    if not admin:
        pytest.skip("CELEBFACE_TEST_PG is not set (.ci/run starts a PostgreSQL server)")
    psycopg = pytest.importorskip("psycopg")
    import uuid

    from celebface.gallery import Gallery

    name = f"celebface_other_{uuid.uuid4().hex[:10]}"
    url = f"{admin.rpartition('/')[0]}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(url, autocommit=True) as conn:  # another app's tables
            conn.execute("CREATE TABLE people (id serial PRIMARY KEY, email text)")
        g = Gallery()
        g.add(np.eye(2, 4, dtype=np.float32), ["amy", "bo"], ["a.jpg", "b.jpg"])
        g.save(tmp_path / "g")
        code, err = cli(capsys, "gallery", "import", str(tmp_path / "g"), url)
        assert code == 2 and "another application" in err, err
        with psycopg.connect(url, autocommit=True) as conn:  # nothing of ours was left
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables <= {"people", "schema_version"}, tables
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ memory of a 16-bit PNG
def _grey16_png(path: Path, w: int, h: int) -> Path:
    """A real 16-bit greyscale PNG of zeros (9000 x 9000: about 157 KB on disk)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, 0, 0, 0, 0])
    z = zlib.compressobj(9)
    row = b"\0" * (1 + 2 * w)
    idat = b"".join([*(z.compress(row) for _ in range(h)), z.flush()])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.slow
def test_16_bit_png_is_read_without_gigabytes(tmp_path: Path) -> None:
    """Issue 31: reading a 157 KB 16-bit 9000 x 9000 PNG peaked at 2.2-2.7 GB (float64 copies
    of the whole image); now the rescale goes a band of rows at a time (measured 0.67 GB)."""
    import subprocess
    import sys

    from faultkit import ENV

    png = _grey16_png(tmp_path / "grey16.png", 9000, 9000)
    assert png.stat().st_size < 200_000
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux's /proc/self/status (VmHWM)")
    # VmHWM: this process's own peak (ru_maxrss would carry the forking test process's)
    code = ("from celebface.io import read_image; "
            f"r = read_image({str(png)!r}, 1600); assert r.rgb.shape == (1600, 1600, 3); "
            "assert r.scale == 9000 / 1600; "
            "print([ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    peak_mb = int(out.stdout.split()[-2]) / 1024  # "VmHWM:  665104 kB"
    assert peak_mb < 1200, f"peak {peak_mb:.0f} MB"


def test_16_bit_rescale_is_unchanged() -> None:
    """The banded rescale gives the values the whole-image one gave."""
    from PIL import Image

    from celebface.io.images import _to_rgb

    arr = (np.arange(600 * 7, dtype=np.uint32).reshape(600, 7) * 97 % 65536).astype(np.uint16)
    got = np.asarray(_to_rgb(Image.fromarray(arr)).convert("RGB"))
    want = np.clip(arr.astype(np.float64) / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(got[..., 0], want) and np.array_equal(got[..., 2], want)


# ------------------------------------------------------------------ .gif / .avif in folders
def test_folder_scans_read_gif_and_avif_as_direct_paths_do(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    from PIL import Image, features

    from celebface.data import list_dataset
    from celebface.io import read_image
    from celebface.streaming.sources import folder_files

    root = tmp_path / "data"
    (root / "amy").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "amy" / "a.png")
    Image.new("RGB", (40, 30), (10, 200, 10)).save(root / "amy" / "b.gif")
    kinds = {"a.png", "b.gif"}
    if features.check("avif"):
        Image.new("RGB", (40, 30), (10, 10, 200)).save(root / "amy" / "c.avif")
        kinds.add("c.avif")
    for name in kinds:  # a direct path reads each
        assert read_image(root / "amy" / name).rgb.shape == (30, 40, 3)
    with caplog.at_level("WARNING"):
        assert {Path(it.path).name for it in list_dataset(root)} == kinds
        assert {p.name for p in folder_files(root)} == kinds
    assert "not a supported image type" not in caplog.text


# ------------------------------------------------------------------ read-only gallery
def test_enroll_add_into_a_read_only_gallery_fails_before_embedding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    from celebface.gallery import EnrollConfig, enroll
    from celebface.io import OutputPathError
    from faultkit import ColourEmbedder, write_people

    g = tmp_path / "g"
    cfg = EnrollConfig(detector="none")
    enroll(write_people(tmp_path / "a", ["amy"]), g, config=cfg,
           models=(ColourEmbedder(), None), progress=False)
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, **kwargs):  # what a read-only mount answers (also as root)
        if str(kwargs.get("dir", "")).startswith(str(g)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    emb = ColourEmbedder()
    with pytest.raises(OutputPathError, match=f"gallery {g}: cannot write there "
                                              r"\(Read-only file system\)"):
        enroll(write_people(tmp_path / "b", ["bob", "cat"], n=3), g, add=True, config=cfg,
               models=(emb, None), progress=False)
    assert emb.calls == 0  # refused before embedding anything


# ------------------------------------------------------------------ outputs into a dataset
def test_timeline_into_a_photo_dataset_is_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--timeline wrote thumbnails/ into a folder of people's photos (read as a person next)."""
    from faultkit import write_people

    data = write_people(tmp_path / "data", ["amy", "bob"])
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    code, err = cli(capsys, "recognize", str(clip), "--gallery", str(tmp_path / "g"),
                    "--timeline", str(data))
    assert code == 2 and f"--timeline {data} holds photos" in err, err
    assert not (data / "thumbnails").exists()


def test_gallery_export_into_a_photo_folder_is_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    from faultkit import write_people

    data = write_people(tmp_path / "data", ["amy"])
    code, err = cli(capsys, "gallery", "export", "postgresql://u@127.0.0.1:1/db", str(data))
    assert code == 2 and f"EXPORT {data} holds photos" in err, err
    assert sorted(p.name for p in data.iterdir()) == ["amy"]


def test_outputs_go_into_their_own_kind_of_folder(tmp_path: Path) -> None:
    """A folder of its own kind (a gallery, an earlier timeline) holding images is not a
    dataset: re-running into it is allowed."""
    from celebface.io import check_output_dir

    tl = tmp_path / "tl"
    (tl / "thumbnails").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tl / "thumbnails" / "track0001.jpg")
    (tl / "appearances.csv").write_text("person\n")
    check_output_dir(tl, flag="--timeline", own="appearances.csv")
    check_output_dir(tmp_path / "new", flag="--timeline", own="appearances.csv")
