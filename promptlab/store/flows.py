"""Assistant flows: conversations, turns and their traces (issue 8).

Tables are defined here on the shared ``schema.metadata``; ``TABLES`` lists them for the
migration that creates them. ``FlowSQL`` holds this area's SQL and is mixed into ``Store``,
so it can use ``self.read()``, ``self.write()``, ``self._upsert()``, ``self._insert_for()``
and ``self.dialect``.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import schema as t  # noqa: F401  (tables live on t.metadata)

TABLES: list[sa.Table] = []


class FlowSQL:
    pass
