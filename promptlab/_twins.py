"""Async twins of the resources' blocking methods: ``alog`` for ``log``, ``acreate`` for ``create``.

One convention for the whole API: the twin of ``name`` is ``a`` + ``name``, takes the same
arguments, returns the same value and raises the same errors; ``inspect.signature`` and
``help()`` show the blocking method's signature. The store work runs in a worker thread, never on
the caller's event loop: writes on the execution seam's store-writer threads (``lab.engine.io``:
once started a write finishes even if the awaiting task is cancelled, and on SQLite it queues
behind the seam's own writes instead of contending for the lock), reads in the loop's default
thread pool.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable


def async_twin(method: Callable[..., Any], *, writes: bool = False) -> Callable[..., Any]:
    """The ``a``-prefixed twin of a resource's blocking ``method`` (defined in the class body:
    ``alog = async_twin(log, writes=True)``). The resource holds its Lab as ``self._lab``."""
    name = method.__name__

    @functools.wraps(method)
    async def twin(self: Any, *args: Any, **kwargs: Any) -> Any:
        if writes:
            return await self._lab.engine.io(method, self, *args, **kwargs)
        return await asyncio.to_thread(method, self, *args, **kwargs)

    twin.__name__ = f"a{name}"
    twin.__qualname__ = method.__qualname__.rsplit(".", 1)[0] + f".a{name}" if "." in method.__qualname__ \
        else f"a{name}"
    twin.__doc__ = (f"Async twin of ``{name}`` (same arguments, result and errors); the store work runs in a "
                    f"worker thread, never on the caller's event loop.\n\n{method.__doc__ or ''}").rstrip()
    return twin


__all__ = ["async_twin"]
