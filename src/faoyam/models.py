"""Imports every domain's models, so that metadata (migrations, the privacy engine) sees all tables.

This is the composition root of the tables: the layers below (core, the privacy engine)
never import a domain, so they rely on this module having been imported (the app, the
CLI, the migrations and the tests do) and check it through ``core.tables.every_table``.
A new domain adds its ``models`` module here.
"""

from faoyam.accounts import models as accounts_models  # noqa: F401
from faoyam.core import models as core_models  # noqa: F401
from faoyam.core import tables
from faoyam.detection import models as detection_models  # noqa: F401
from faoyam.devices import models as devices_models  # noqa: F401
from faoyam.devices.gateway import presence as devices_presence  # noqa: F401
from faoyam.privacy import models as privacy_models  # noqa: F401
from faoyam.recordings import models as recordings_models  # noqa: F401

tables.all_registered()
