"""A layer's default QGIS style stored inside its GeoPackage: the `layer_styles` table QGIS reads.

QGIS (QgsOgrProviderMetadata::saveStyle / loadStyle for GPKG) keeps styles in an attributes table
`layer_styles`, created through OGR, registered in gpkg_contents (data_type "attributes", srs_id 0) and in
OGR's gpkg_ogr_contents, with no gpkg_extensions row. When it opens a layer it loads the style whose
f_table_name / f_geometry_column match the layer, defaults first, newest first; so a GeoPackage carries its
symbology with it, wherever it is copied, without a .qml beside it.

The table is written here with sqlite3, with QGIS's exact schema, into a file that is complete otherwise (the
writer's temporary name, before the rename), so the style is part of the atomic output.
"""

from __future__ import annotations

import getpass
import sqlite3
from contextlib import closing
from pathlib import Path

from rsseg_cli.errors import UserError

__all__ = ["STYLE_TABLE", "read_default_style", "write_default_style"]

STYLE_TABLE = "layer_styles"

# The DDL QGIS's OGR provider creates (QGIS 3.22, src/core/providers/ogr/qgsogrprovidermetadata.cpp),
# as sqlite_master shows it for a GeoPackage QGIS wrote.
_CREATE = (
    f'CREATE TABLE IF NOT EXISTS "{STYLE_TABLE}" ( '
    '"id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), '
    '"f_table_name" TEXT(256), "f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, '
    '"styleSLD" TEXT, "useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
    "\"update_time\" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def _geometry_column(db: sqlite3.Connection, gpkg: Path, layer: str) -> str:
    if not _has_table(db, "gpkg_contents"):
        raise UserError(
            f"{gpkg} is not a GeoPackage (it has no gpkg_contents table); cannot store a style in it."
        )
    row = db.execute(
        "SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)", (layer,)
    ).fetchone()
    if row is None:
        raise UserError(f"{gpkg} has no geometry layer named {layer!r}; cannot store its style.")
    return str(row[0])


def _create_table(db: sqlite3.Connection) -> None:
    """The table and its registrations, as OGR creates an attributes layer for QGIS."""
    db.execute(_CREATE)
    db.execute(
        "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, last_change, "
        f"srs_id) VALUES (?, 'attributes', ?, '', {_NOW}, 0)",
        (STYLE_TABLE, STYLE_TABLE),
    )
    if _has_table(db, "gpkg_ogr_contents"):
        # NULL: OGR counts the rows itself when asked (no triggers keep a count here).
        db.execute("INSERT OR IGNORE INTO gpkg_ogr_contents (table_name, feature_count) VALUES (?, NULL)",
                   (STYLE_TABLE,))  # fmt: skip


def write_default_style(
    gpkg: Path | str,
    layer: str,
    qml: str,
    *,
    name: str | None = None,
    description: str = "written by rsseg",
    sld: str = "",
) -> None:
    """Store `qml` as the default style of `layer` in the GeoPackage `gpkg`.

    Idempotent: a style of the same name for the layer is replaced, and every other style of the layer stops
    being its default, so writing twice leaves one default row."""
    gpkg = Path(gpkg)
    name = (name or layer)[:30]  # QGIS's column width
    try:
        owner = getpass.getuser()
    except (KeyError, OSError):  # no user name in containers without a passwd entry
        owner = ""
    with closing(sqlite3.connect(gpkg)) as db, db:
        column = _geometry_column(db, gpkg, layer)
        _create_table(db)
        db.execute(f'UPDATE "{STYLE_TABLE}" SET useAsDefault = 0 WHERE f_table_name = ?', (layer,))
        db.execute(f'DELETE FROM "{STYLE_TABLE}" WHERE f_table_name = ? AND styleName = ?', (layer, name))
        db.execute(
            f'INSERT INTO "{STYLE_TABLE}" (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, '
            "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
            "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, ?, NULL)",
            (layer, column, name, qml, sld, description, owner[:30]),
        )


def read_default_style(gpkg: Path | str, layer: str) -> str | None:
    """The QML QGIS would load for `layer` (its query: defaults first, then the newest), or None."""
    with closing(sqlite3.connect(f"{Path(gpkg).resolve().as_uri()}?mode=ro", uri=True)) as db:
        if not _has_table(db, STYLE_TABLE):
            return None
        row = db.execute(
            f'SELECT styleQML FROM "{STYLE_TABLE}" WHERE f_table_name = ? '
            "ORDER BY CASE WHEN useAsDefault THEN 1 ELSE 2 END, update_time DESC LIMIT 1",
            (layer,),
        ).fetchone()
    return None if row is None else str(row[0])
