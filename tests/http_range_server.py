"""A local HTTP server for tests and benchmarks: serves a folder on 127.0.0.1 with byte ranges (what GDAL's
/vsicurl/ needs to read a COG window by window), and switches that reproduce the failures users meet: a
server that ignores Range headers (200 with the whole file), and one that wants credentials (403 without a
given header).

The server threads run in a child process: rasterio keeps the GIL through some GDAL calls that go to the
network (the directory listing GDAL does on open, for one), so a server thread in the test's own process
could never answer them and the test would hang.
"""

from __future__ import annotations

import multiprocessing as mp
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Traffic:
    """What clients asked for, counted in the server process: tests check that a COG is read in ranges,
    the bench reports the volume."""

    def __init__(self, ctx) -> None:
        self._counts = ctx.Array("q", 3)  # requests, range requests, bytes sent

    def add(self, ranged: bool, sent: int) -> None:
        with self._counts.get_lock():
            self._counts[0] += 1
            self._counts[1] += int(ranged)
            self._counts[2] += sent

    @property
    def requests(self) -> int:
        return self._counts[0]

    @property
    def range_requests(self) -> int:
        return self._counts[1]

    @property
    def bytes_sent(self) -> int:
        return self._counts[2]

    def __repr__(self) -> str:
        return f"Traffic(requests={self.requests}, range_requests={self.range_requests}, bytes={self.bytes_sent})"


@dataclass
class _Settings:
    root: Path
    ranges: bool
    require_header: tuple[str, str] | None
    traffic: Traffic


class RangeServer:
    """`with RangeServer(folder) as srv: srv.url("scene.tif")`. `ranges=False` answers every GET with the
    whole file (status 200), as some static hosts do; `require_header=("Authorization", "Bearer x")`
    answers 403 to requests without it."""

    def __init__(self, root: Path, *, ranges: bool = True, require_header: tuple[str, str] | None = None):
        ctx = mp.get_context("spawn")  # a clean interpreter: no copy of the test's threads or GDAL state
        self._ctx = ctx
        self.traffic = Traffic(ctx)
        self._settings = _Settings(Path(root).resolve(), ranges, require_header, self.traffic)
        self._process = None
        self._port: int | None = None

    @property
    def base(self) -> str:
        assert self._port is not None, "the server is not running"
        return f"http://127.0.0.1:{self._port}"

    def url(self, relative: str | Path) -> str:
        return f"{self.base}/{Path(relative).as_posix()}"

    def start(self) -> RangeServer:
        ready = self._ctx.Queue()
        self._process = self._ctx.Process(target=_serve_forever, args=(self._settings, ready), daemon=True)
        self._process.start()
        self._port = ready.get(timeout=30)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join(10)
            self._process = None

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def serve(root: Path, **options) -> Iterator[RangeServer]:
    with RangeServer(root, **options) as server:
        yield server


def _serve_forever(settings: _Settings, ready) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(settings))
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


def _handler(server: _Settings) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: GDAL reuses its connection between ranges

        def log_message(self, *args) -> None:  # quiet: pytest output stays readable
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            if server.require_header is not None:
                name, value = server.require_header
                if self.headers.get(name) != value:
                    return self._status(403, b"Forbidden: missing credentials\n")
            path = (server.root / unquote(urlsplit(self.path).path).lstrip("/")).resolve()
            if server.root not in path.parents or not path.is_file():
                return self._status(404, b"Not Found\n")
            size = path.stat().st_size
            wanted = self.headers.get("Range")
            match = _RANGE.match(wanted.strip()) if wanted and server.ranges else None
            if match is None:
                self.send_response(200)
                if server.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                start, end = 0, size - 1
            else:
                start, end = _bounds(match, size)
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            with path.open("rb") as f:  # only the bytes asked for: a bench scene is hundreds of MiB
                f.seek(start)
                chunk = f.read(end - start + 1) if body else b""
            self.send_header("Content-Type", _content_type(path))
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):  # GDAL closed early: it had what it needed
                    return
            server.traffic.add(match is not None, len(chunk) if body else 0)

        def _status(self, code: int, text: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(text)
            server.traffic.add(False, 0)

    return Handler


def _bounds(match: re.Match, size: int) -> tuple[int, int]:
    first, last = match.groups()
    if first == "":  # a suffix range: the last N bytes
        n = int(last or 0)
        return max(0, size - n), size - 1
    return int(first), min(size - 1, int(last)) if last else size - 1


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".json", ".geojson"):
        return "application/json"
    if suffix in (".tif", ".tiff"):
        return "image/tiff"
    return "application/octet-stream"


# --------------------------------------------------------------------------------------------------------
# What the tests serve: tiled GeoTIFFs (read by range like COGs) and STAC Items pointing at them


def write_tiled(path: Path, data, *, res: float = 10.0, crs: str = "EPSG:32633", block: int = 256, **profile):
    """(bands, h, w) `data` as a tiled, compressed GeoTIFF at (500000, 5500000) with `res` m pixels: each
    window is a few range requests, as with a COG."""
    import rasterio
    from rasterio.transform import from_origin

    bands, h, w = data.shape
    tiled = dict(tiled=True, blockxsize=block, blockysize=block) if h >= block and w >= block else {}
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=bands, dtype=data.dtype, crs=crs,
        transform=from_origin(500000.0, 5500000.0, res, res), compress="deflate", **tiled, **profile,
    ) as dst:  # fmt: skip
        dst.write(data)
    return path


def write_item(path: Path, assets: dict[str, tuple[str, str | None]], item_id: str = "item-1") -> Path:
    """A STAC Item at `path`: `assets` maps a key to (href, common name or None); hrefs are written as
    given (relative ones resolve against the Item's location). Common names use eo:bands for some assets
    and STAC 1.1 `bands` with eo:common_name for others, as catalogues mix both."""
    import json

    entries = {}
    for i, (key, (href, common)) in enumerate(assets.items()):
        entry = {
            "href": href,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
        if common and i % 2:
            entry["bands"] = [{"name": key, "eo:common_name": common}]
        elif common:
            entry["eo:bands"] = [{"name": key, "common_name": common}]
        entries[key] = entry
    entries["thumbnail"] = {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]}
    item = {
        "type": "Feature", "stac_version": "1.1.0", "id": item_id, "properties": {"datetime": "2024-06-01T10:00:00Z"},
        "geometry": None, "links": [], "assets": entries,
    }  # fmt: skip
    path.write_text(json.dumps(item, indent=1))
    return path
