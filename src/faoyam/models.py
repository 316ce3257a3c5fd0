"""Imports every domain's models, so that metadata (migrations, the privacy engine) sees all tables.

A new domain adds its ``models`` module here.
"""

from faoyam.accounts import models as accounts_models  # noqa: F401
from faoyam.core import models as core_models  # noqa: F401
from faoyam.devices import models as devices_models  # noqa: F401
from faoyam.devices.gateway import presence as devices_presence  # noqa: F401
from faoyam.privacy import models as privacy_models  # noqa: F401
