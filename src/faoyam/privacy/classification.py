"""Checks that every column and blob kind is declared, and every declaration is sound.

``problems()`` returns human-readable findings; the classification test asserts there are
none, and ``faoyam privacy check`` prints them for operators who add their own tables.
"""

from __future__ import annotations

from faoyam.core.database import Base
from faoyam.core.declarations import (
    BLOB_KINDS,
    NotPersonal,
    Personal,
    SubjectRoot,
    column_declaration,
    table_declaration,
)
from faoyam.core.tables import every_table
from faoyam.privacy import register


def problems() -> list[str]:
    out: list[str] = []
    blob_columns: dict[str, list[str]] = {}
    tables = Base.metadata.tables
    roots = []
    for table in every_table():
        decl = table_declaration(table)
        has_personal = False
        for col in table.columns:
            where = f"{table.name}.{col.name}"
            d = column_declaration(col)
            if d is None:
                out.append(f"{where}: not classified (info=personal(...) or not_personal(...))")
                continue
            if isinstance(d, NotPersonal):
                continue
            if not isinstance(d, Personal):
                out.append(f"{where}: unknown declaration {d!r}")
                continue
            has_personal = True
            if d.category not in register.CATEGORIES:
                out.append(f"{where}: unknown category {d.category!r}")
            for a in d.activities:
                if a not in register.ACTIVITIES:
                    out.append(f"{where}: unknown activity {a!r}")
            if d.retention not in register.RETENTION:
                out.append(f"{where}: unknown retention rule {d.retention!r}")
            if d.blob:
                if d.blob not in BLOB_KINDS:
                    out.append(f"{where}: blob kind {d.blob!r} is not declared")
                blob_columns.setdefault(d.blob, []).append(where)
        if decl is None:
            if has_personal:
                out.append(f"{table.name}: holds personal data but has no __privacy__ (TablePrivacy)")
            continue
        if isinstance(decl.subject, SubjectRoot):
            roots.append(table.name)
            if decl.subject.id_column not in table.c:
                out.append(f"{table.name}: subject root column {decl.subject.id_column!r} missing")
        if has_personal and not decl.links and not isinstance(decl.subject, SubjectRoot) and not decl.unlinkable:
            out.append(f"{table.name}: personal data with no link to its subject (Link(...) or unlinkable='why')")
        for link in decl.links:
            if link.column not in table.c:
                out.append(f"{table.name}: link column {link.column!r} missing")
            if link.via:
                other = tables.get(link.via)
                if other is None:
                    out.append(f"{table.name}: link via unknown table {link.via!r}")
                elif len(other.primary_key.columns) != 1:
                    out.append(f"{table.name}: link via {link.via!r} needs a one-column primary key")
            for name in link.columns or ():
                if name not in table.c or not isinstance(column_declaration(table.c[name]), Personal):
                    out.append(f"{table.name}: link {link.column!r} scopes {name!r}, which is not a personal column")
                elif table.c[name].primary_key:
                    out.append(f"{table.name}.{name}: a scoped column is anonymised, so it cannot be a primary key")
        if decl.on_erase == "keep" and not decl.keep_reason.strip():
            out.append(f"{table.name}: on_erase='keep' needs keep_reason (the legal duty that keeps the rows)")
        if decl.expiry is not None and decl.expiry.column not in table.c:
            out.append(f"{table.name}: expiry column {decl.expiry.column!r} missing")
        if decl.on_erase == "anonymise" and has_personal:
            for col in table.columns:
                d = column_declaration(col)
                if isinstance(d, Personal) and col.primary_key:
                    out.append(f"{table.name}.{col.name}: personal primary key cannot be anonymised")
    if len(roots) != 1:
        out.append(f"exactly one subject root table is needed, found {roots}")
    for name, kind in BLOB_KINDS.items():
        if kind.category not in register.CATEGORIES:
            out.append(f"blob kind {name}: unknown category {kind.category!r}")
        for a in kind.activities:
            if a not in register.ACTIVITIES:
                out.append(f"blob kind {name}: unknown activity {a!r}")
        if kind.personal and name not in blob_columns:
            out.append(f"blob kind {name}: no column references it, so export and erasure cannot reach it")
    return out
