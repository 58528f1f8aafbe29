"""Where a scene comes from: a local file, a VRT, a URL or object-store path handed to GDAL as it is, or a STAC
Item (a VRT of its chosen assets). Every command that reads scenes takes SceneSource objects: `uri` is what
rasterio opens, `name` names the outputs (a URL's file stem, a STAC Item's id)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SceneSource:
    given: str  # what the user wrote (a path, URL, /vsi path, STAC Item file or URL)
    uri: str  # what GDAL opens: a local path, /vsicurl/..., /vsis3/..., or a VRT built for a STAC Item
    name: str  # the stem of the outputs: the file stem, or the STAC Item id
    local: Path | None = None  # the local file, when there is one (existence and mtime are checked there)

    @property
    def remote(self) -> bool:
        return self.local is None

    def mtime(self) -> float | None:
        """The input's modification time (local files; None when unknown, e.g. a URL)."""
        try:
            return self.local.stat().st_mtime if self.local is not None else None
        except OSError:
            return None

    def __str__(self) -> str:
        return self.given

    @classmethod
    def from_path(cls, path: Path | str) -> SceneSource:
        """A local file (no URL handling: geo.sources.parse_source does that)."""
        path = Path(path)
        return cls(str(path), str(path), path.stem, path)
