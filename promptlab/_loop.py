"""A private event loop on a daemon thread, so synchronous calls work everywhere.

Why: ``lab.actions.prompt()`` must work in a plain script *and* inside Jupyter, where an event
loop is already running in the main thread (so ``asyncio.run`` is not allowed). All provider I/O
runs on this one loop; sync callers block on a future, async callers on other loops await it.
Keeping every HTTP client on one loop also avoids connection pools bound to the wrong loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "promptlab-loop"):
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def in_loop(self) -> bool:
        """True when called from a coroutine running on this loop."""
        try:
            return self._loop is not None and asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (from any thread but the loop's)."""
        if self.in_loop():
            coro.close()
            raise RuntimeError("blocking promptlab call made from inside promptlab's event loop; "
                               "use the a-prefixed async method instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the loop from a coroutine on any loop."""
        if self.in_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> "asyncio.Future[T]":
        """Start ``coro`` on the loop without waiting; returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[return-value]

    def close(self, final: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Stop the loop, first awaiting ``final()`` on it if the loop was ever started."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        if final is not None:
            asyncio.run_coroutine_threadsafe(_await(final()), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
