"""Moved to :mod:`faoyam.core.declarations` (the declarations are core vocabulary).

This re-export exists only so that branches written before the move keep importing while
they are merged; new code imports ``faoyam.core.declarations``. Delete it once no module
imports it (``tests/test_layers.py`` lists who still does).
"""

from faoyam.core.declarations import (  # noqa: F401 - re-exported
    BLOB_KINDS,
    PRIVACY_KEY,
    BlobKind,
    ExportMode,
    Expiry,
    Link,
    NotPersonal,
    Personal,
    SubjectKey,
    SubjectRoot,
    TablePrivacy,
    blob_kind,
    column_declaration,
    not_personal,
    personal,
    table_declaration,
)
