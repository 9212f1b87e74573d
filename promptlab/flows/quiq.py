"""The seed's ``quiq`` runtime namespace, so its examples run unchanged::

    from promptlab.flows import quiq
    quiq.ctx.format_search_results('my-search-resource', "{title} - {body}")
"""

from __future__ import annotations

from . import ctx

__all__ = ["ctx"]
