"""Running the gateway under uvicorn, also with several worker processes.

uvicorn starts each worker by importing an app factory, so the settings of ``promptlab serve``
travel to the workers in environment variables (``PROMPTLAB_DB``, ``PROMPTLAB_PUBLIC_URL``,
``PROMPTLAB_MAX_BODY_BYTES``) and every worker opens its own Lab on the shared store.
"""

from __future__ import annotations

import os
from typing import Any

from .app import MAX_BODY_BYTES, create_app

ENV_DB = "PROMPTLAB_DB"
ENV_PUBLIC_URL = "PROMPTLAB_PUBLIC_URL"
ENV_MAX_BODY = "PROMPTLAB_MAX_BODY_BYTES"


def app_from_env() -> Any:
    """uvicorn factory: a gateway that owns (and closes at shutdown) a Lab on ``$PROMPTLAB_DB``."""
    from ..lab import Lab

    lab = Lab(os.environ.get(ENV_DB) or None)
    return create_app(lab, public_url=os.environ.get(ENV_PUBLIC_URL) or None,
                      max_body_bytes=int(os.environ.get(ENV_MAX_BODY) or MAX_BODY_BYTES), close_lab=True)


def serve(db: str | None, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          public_url: str | None = None, access_log: bool = True, log_level: str = "info") -> None:
    """Serve the gateway until interrupted (blocking).

    The access log shows client, method, path and status only: never headers, so never a key.
    """
    import uvicorn

    from ..store import resolve_url

    if db is not None:
        os.environ[ENV_DB] = resolve_url(db)
    if public_url:
        os.environ[ENV_PUBLIC_URL] = public_url
    elif ENV_PUBLIC_URL in os.environ:
        del os.environ[ENV_PUBLIC_URL]
    uvicorn.run("promptlab.gateway.server:app_from_env", factory=True, host=host, port=port,
                workers=workers if workers > 1 else None, access_log=access_log, log_level=log_level,
                proxy_headers=True, server_header=False)
