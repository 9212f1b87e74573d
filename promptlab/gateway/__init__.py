"""promptlab's HTTP gateway: the seed's REST API (run actions, experiments, feedback, sessions)
served from a Lab's store, behind bearer API keys, for apps in production.

>>> from promptlab.gateway import create_app, ApiKeys
>>> lab = pl.Lab("postgresql://...")
>>> record, token = ApiKeys(lab.store).create("my-app", ["run", "feedback"])
>>> app = create_app(lab, public_url="https://gw.example.com")     # serve with uvicorn

or from a shell: ``promptlab keys create --name my-app --scope run --scope feedback`` and
``promptlab serve --port 8080 --workers 4 --db postgresql://...``.
"""

from __future__ import annotations

from .app import create_app
from .keys import SCOPES, ApiKey, ApiKeys

__all__ = ["create_app", "ApiKeys", "ApiKey", "SCOPES"]
