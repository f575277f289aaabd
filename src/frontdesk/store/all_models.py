"""Imports every module that defines tables on `frontdesk.store.models.Base`, so Alembic and
the model/migration drift test see the whole schema. Each feature adds one line here; the
application itself never needs this module.
"""

from frontdesk.media import model as media_model  # noqa: F401
from frontdesk.org import model as org_model  # noqa: F401
from frontdesk.pbx import trunk_model  # noqa: F401
from frontdesk.routing import model as routing_model  # noqa: F401
from frontdesk.store import models
from frontdesk.tickets import model as tickets_model  # noqa: F401

Base = models.Base
