"""Videos in the service: who appears when (:mod:`celebface.streaming.timeline`).

``POST /v1/videos`` streams the upload (the raw body; ``?filename=`` names it) to disk, checks
that it opens as a video and starts a background job (one at a time, apart from the photo
workers); ``GET /v1/videos/{id}`` gives its status, progress and, when done, the appearances;
``GET /v1/videos/{id}/thumbnails/{file}`` an appearance's face; ``GET /v1/videos/{id}/video``
a WebM (VP8) copy for the page when the upload is not one browsers play (not H.264, VP8/9 or
AV1 in an MP4 or WebM file: e.g. the MPEG-4 part 2 MP4s OpenCV writes without an H.264
encoder). ``/video`` is the page that plays a video with its timeline under it. Uploads over
``--max-video-mb`` get 413; every error names the user's file. Jobs live in memory; the last
``KEEP`` are kept.
At most ``max_videos`` (:class:`~celebface.serve.ServeConfig`) jobs are queued, running or
uploading at once; more uploads get 503 with ``Retry-After`` before their body is read.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from celebface.recognizer import Recognizer
from celebface.serve.deps import ADMIN, READ, Service
from celebface.serve.schemas import PersonIn, errors
from celebface.serve.service import FaceService, RequestError, display_name
from celebface.streaming.output import open_writer
from celebface.streaming.recognizer import VideoTracker
from celebface.streaming.run import video_timeline
from celebface.streaming.sources import VIDEO_EXTENSIONS
from celebface.streaming.timeline import is_unknown_label, rename_track, renamed_faces
from celebface.types import UNKNOWN

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
KEEP = 20
SUFFIXES = VIDEO_EXTENSIONS  # the video reader's list: one list of what is a video
#: What browsers play: these codecs (OpenCV's FOURCC, upper case) in these containers.
PLAYABLE_CODECS = {"AVC1", "H264", "VP80", "VP90", "VP08", "VP09", "AV01"}
PLAYABLE_SUFFIXES = {".mp4", ".m4v", ".webm"}
#: The longer side of the page's WebM copy (a preview; the timeline is found on the upload).
COPY_SIDE = 640
VIDEO_BODY = {"content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}, "required": True}


@dataclass
class VideoJob:
    id: str
    filename: str
    folder: Path
    frames_total: int
    fps: float
    status: str = "queued"  # queued, running, done, failed
    frames_done: int = 0
    error: str | None = None
    appearances: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    playable: bool = True  # browsers play the upload as it is (else: a WebM copy)
    copy: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        total = max(self.frames_total, 1)
        progress = 1.0 if self.status == "done" else min(self.frames_done / total, 0.99)
        return {
            "id": self.id, "filename": self.filename, "status": self.status,
            "progress": round(progress, 4), "frames_done": self.frames_done,
            "frames_total": self.frames_total, "fps": self.fps, "error": self.error,
            "seconds": None if self.seconds is None else round(self.seconds, 2),
            "video_url": f"/v1/videos/{self.id}/video" if self.copy else None,
            "appearances": [
                {**a, "label": shown(a["person"]),
                 "thumbnail_url": (f"/v1/videos/{self.id}/{a['thumbnail']}"
                                   if a.get("thumbnail") else None)}
                for a in self.appearances],
        }


def shown(person: str) -> str:
    """How the page shows an appearance's person: the name to show (``unknown-N`` as is)."""
    return person if person.startswith(f"{UNKNOWN}-") else display_name(person)


def probe(path: Path, name: str) -> tuple[int, float, bool]:
    """Frame count, rate and whether browsers play it, of the video file ``path`` (the
    user's ``name``); :class:`RequestError` naming ``name`` when it is no video."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        ok, _ = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise RequestError(f"{name}: not a video this server can read", 415)
        code = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")
        playable = (code.upper() in PLAYABLE_CODECS
                    and Path(name).suffix.lower() in PLAYABLE_SUFFIXES)
        return (int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                float(cap.get(cv2.CAP_PROP_FPS) or 25.0), playable)
    finally:
        cap.release()


def webm_copy(path: Path, out: Path, fps: float) -> Path:
    """A WebM (VP8) copy of the video ``path``, at most :data:`COPY_SIDE` px, for browsers."""
    import cv2


    cap = cv2.VideoCapture(str(path))
    writer = None
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            scale = min(1.0, COPY_SIDE / max(h, w))
            size = (max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2))
            if writer is None:
                writer, _ = open_writer(out, fps, size)
            writer.write(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
                         if size != (w, h) else bgr)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return out


class VideoJobs:
    """The video jobs of one service: uploads in a temporary folder (removed at exit), one
    daemon worker thread (a job never holds the process up when it stops)."""

    def __init__(self, service: FaceService) -> None:
        self.service = service
        self.root = Path(tempfile.mkdtemp(prefix="celebface-videos-"))
        weakref.finalize(self, shutil.rmtree, self.root, True)
        self.jobs: OrderedDict[str, VideoJob] = OrderedDict()
        self._queue: queue.Queue[tuple[VideoJob, Path]] = queue.Queue()
        self._lock = threading.Lock()
        self._naming = threading.Lock()
        self._uploading = 0
        threading.Thread(target=self._work, name="celebface-video", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._run(*self._queue.get())

    async def upload(self, request: Request, filename: str) -> VideoJob:
        suffix = Path(filename).suffix.lower()
        if suffix not in SUFFIXES:
            raise RequestError(f"{filename}: not a video file name (one of "
                               f"{', '.join(sorted(SUFFIXES))})", 415)
        bound = self.service.config.max_videos
        with self._lock:
            active = self._uploading + sum(j.status in ("queued", "running")
                                           for j in self.jobs.values())
            if active >= bound:
                raise RequestError(f"{active} videos are being processed or waiting (at most "
                                   f"{bound}); try again later", 503, "busy",
                                   {"Retry-After": "30"})
            self._uploading += 1
        try:
            return await self._receive(request, filename, suffix)
        finally:
            with self._lock:
                self._uploading -= 1

    async def _receive(self, request: Request, filename: str, suffix: str) -> VideoJob:
        job_id = uuid.uuid4().hex[:12]
        folder = self.root / job_id
        folder.mkdir()
        path = folder / f"upload{suffix}"
        size = 0
        try:
            with path.open("wb") as fh:
                async for chunk in request.stream():
                    fh.write(chunk)
                    size += len(chunk)
            if not size:
                raise RequestError(f"{filename}: empty (no video sent)")
            frames, fps, playable = probe(path, filename)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = VideoJob(job_id, filename, folder, frames, fps, playable=playable)
        with self._lock:
            self.jobs[job_id] = job
            finished = [k for k, j in self.jobs.items() if j.status in ("done", "failed")]
            for k in finished[:max(0, len(self.jobs) - KEEP)]:  # the oldest finished ones
                shutil.rmtree(self.jobs.pop(k).folder, ignore_errors=True)
        self._queue.put((job, path))
        return job

    def _run(self, job: VideoJob, path: Path) -> None:

        job.status, start = "running", time.perf_counter()
        try:
            s = self.service
            if s.recognizer is None:
                raise RequestError("no one is enrolled yet")
            rec = VideoTracker(Recognizer(s.gallery if s.editable else None,
                                          detector=s.video_detector,
                                          embedder=s.embedder,
                                          model=s.recognizer.model,
                                          config=s.recognizer_config()))

            def tick(n: int) -> None:
                job.frames_done = n

            found = video_timeline(rec, path, job.folder / "timeline", on_frame=tick)
            if not job.playable:  # the page plays this copy instead of the user's file
                job.copy = webm_copy(path, job.folder / "play.webm", job.fps)
            job.appearances = [a.to_dict() for a in found]
            job.status = "done"
        except Exception as exc:  # the job reports it; the server carries on
            log.error("video %s (%s): %s", job.id, job.filename, exc)
            # the client sees its own file name, never a path on the server
            message = str(exc).replace(str(path), job.filename).replace(str(job.folder), "")
            job.status = "failed"
            job.error = message if message.startswith(job.filename) else \
                f"{job.filename}: {message}"
        finally:
            job.seconds = time.perf_counter() - start
            path.unlink(missing_ok=True)  # the page plays its own copy

    def name_track(self, job_id: str, track: int, name: str) -> dict[str, Any]:
        """Enrol the face of an ``unknown-N`` track as ``name`` (run it in the service's pool)
        as ``celebface enroll --from-timeline`` does: the name is written over the track's
        person in the job's ``appearances.csv`` (:func:`~celebface.streaming.timeline.
        rename_track`), the renamed row's thumbnail is picked by
        :func:`~celebface.streaming.timeline.renamed_faces` and its largest face enrolled
        (:meth:`FaceService.enroll`). The job's appearance then shows the name."""

        job, name = self.get(job_id), self.service.valid_name(name)
        if is_unknown_label(name):
            raise RequestError(f"{name!r} is the name of an unknown track: give a person's "
                               "name", code="invalid_name")
        found = next((a for a in job.appearances if a["track"] == track), None)
        if found is None:
            raise RequestError(f"{job.filename}: no track {track}", 404, "no_such_track")
        if not is_unknown_label(found["shown"]):
            raise RequestError(f"{job.filename}: track {track} was recognised as "
                               f"{found['shown']!r}; only unknown tracks are named here", 409,
                               "track_named")
        folder = job.folder / "timeline"
        with self._naming:  # one track named at a time: its rows are rewritten
            rename_track(folder, track, name)
            faces = [thumb for _, thumb in renamed_faces(folder)
                     if thumb.name == Path(found["thumbnail"]).name]
            try:
                if not faces:
                    raise RequestError(f"{job.filename}: track {track} has no face picture to "
                                       "enrol", 409, "no_picture")
                label = f"{Path(job.filename).stem}-track{track:04d}.jpg"
                enrolled = self.service.enroll(name, [(label, faces[0].read_bytes())])
            except BaseException:
                rename_track(folder, track, found["person"])  # as it was
                raise
            found["person"] = name
        return {**job.to_dict(), "enrolled": enrolled}

    def get(self, job_id: str) -> VideoJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError(f"no video job {job_id!r}", 404)
        return job


def get_jobs(request: Request) -> VideoJobs:
    """The application's video jobs (``app.state.videos``)."""
    jobs: VideoJobs = request.app.state.videos
    return jobs


Jobs = Annotated[VideoJobs, Depends(get_jobs)]
router = APIRouter()


@router.post("/v1/videos", dependencies=[READ], status_code=202, summary="Timeline of a video",
             responses=errors(400, 401, 403, 413, 415, 503),
             openapi_extra={"requestBody": VIDEO_BODY})
async def upload(request: Request, jobs: Jobs, filename: str = "video.mp4") -> dict[str, Any]:
    """Upload a video as the raw body (`?filename=clip.mp4` gives its type); a job finds
    who appears when. Poll `GET /v1/videos/{id}`."""
    return (await jobs.upload(request, filename)).to_dict()


@router.get("/v1/videos/{job_id}", dependencies=[READ], summary="A video job",
            responses=errors(400, 401, 403, 404))
async def status(job_id: str, jobs: Jobs) -> dict[str, Any]:
    """Status (queued, running, done, failed), progress 0-1, and when done the
    appearances: person (or unknown-N), track, start_s, end_s, frames, scores."""
    return jobs.get(job_id).to_dict()


@router.get("/v1/videos/{job_id}/thumbnails/{name}", dependencies=[READ],
            summary="An appearance's face",
            responses={200: {"content": {"image/jpeg": {}}}, **errors(400, 401, 403, 404)})
async def thumbnail(job_id: str, name: str, jobs: Jobs) -> Response:
    job = jobs.get(job_id)
    path = job.folder / "timeline" / "thumbnails" / Path(name).name
    if not path.is_file():
        raise RequestError(f"no thumbnail {name!r}", 404)
    return FileResponse(path, media_type="image/jpeg")


@router.get("/v1/videos/{job_id}/video", dependencies=[READ],
            summary="A copy of the video browsers play",
            responses={200: {"content": {"video/webm": {}}}, **errors(400, 401, 403, 404)})
async def video(job_id: str, jobs: Jobs) -> Response:
    """A WebM copy of the upload, made when browsers would not play the upload itself
    (the job's `video_url`); 404 otherwise."""
    job = jobs.get(job_id)
    if job.copy is None or not job.copy.is_file():
        raise RequestError(f"{job.filename}: no copy (browsers play the file as it is)", 404)
    return FileResponse(job.copy, media_type="video/webm")


@router.post("/v1/videos/{job_id}/tracks/{track}/name", dependencies=[ADMIN],
             summary="Name an unknown track (enrol its face)",
             responses=errors(400, 401, 403, 404, 409, 503))
async def name_track(job_id: str, track: int, body: PersonIn, jobs: Jobs, service: Service
                     ) -> dict[str, Any]:
    """Enrol the face of track `track` of a finished job (an `unknown-N` appearance) as
    `name`, as `celebface enroll --from-timeline` does with a name written over `unknown-N`
    in `appearances.csv`. Returns the job, its appearance now under the name, and
    `enrolled` (as `POST /v1/people/{name}/photos` answers)."""
    return await service.run(jobs.name_track, job_id, track, body.name)


@router.get("/video", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "video.html")
