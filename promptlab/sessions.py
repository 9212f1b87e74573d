"""Sessions & memory (the seed's "Sessions & Memory"): a conversation an action remembers.

Create a session, then pass its GUID to ``prompt``: the stored conversation (the last
``memory_window`` messages) is sent before the new turn, and both the user turn and the
answer are appended afterwards::

    s = lab.sessions.create(action="writer", ext_user_id="u-1", name="chat")
    lab.actions.prompt("writer", {...}, session=s.guid)

Every generation of a session carries the session's ``ext_user_id`` (unless the call gives its
own) and, in its metadata, the session's name as ``session_name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._twins import async_twin
from .checks import user_id
from .errors import ConfigError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from .lab import Lab


@dataclass(frozen=True)
class Session:
    guid: str
    action: str | None
    ext_user_id: str | None
    name: str | None
    memory_window: int | None
    created_at: datetime
    messages: list[dict[str, Any]] = field(default_factory=list)


class Sessions:
    """``lab.sessions``."""

    def __init__(self, lab: "Lab"):
        self._lab = lab

    def create(self, action: str | None = None, ext_user_id: str | None = None,
               name: str | None = None, memory_window: int | None = None, *,
               extUserId: str | None = None) -> Session:  # noqa: N803 (the seed's spelling)
        """Start a session, optionally tied to an action and an external user id (``ext_user_id``,
        or the seed's ``extUserId``), which every generation of the session then carries.

        ``memory_window`` caps how many earlier messages are sent with each turn (the Lab's
        ``memory_window`` when None).

        >>> s = lab.sessions.create(action="writer", extUserId="elon@musk.net",
        ...                         name="A conversation about X.com with Elon Musk")
        """
        ext_user_id = user_id(ext_user_id, extUserId)
        if memory_window is not None and (not isinstance(memory_window, int) or memory_window < 0):
            raise ConfigError(f"memory_window must be a non-negative integer, not {memory_window!r}")
        action_guid = self._lab.actions.get(action, version="latest").guid if action else None
        row = self._lab.store.create_session(action_guid, ext_user_id, name, memory_window)
        return self.get(row["guid"])

    def get(self, guid: str) -> Session:
        """The session with all its messages."""
        return _session(self._row(guid), self._lab.store.session_messages(guid))

    def find(self, guid: str) -> Session:
        """The session without its messages (one small read); NotFoundError when unknown."""
        return _session(self._row(guid))

    def _row(self, guid: str) -> dict[str, Any]:
        row = self._lab.store.get_session(guid)
        if row is None:
            raise NotFoundError("session", guid, "create one with lab.sessions.create()")
        return row

    def list(self, ext_user_id: str | None = None, action: str | None = None) -> list[Session]:
        action_guid = self._lab.actions.get(action, version="latest").guid if action else None
        return [_session(r) for r in self._lab.store.list_sessions(ext_user_id, action_guid)]

    def history(self, guid: str) -> list[dict[str, Any]]:
        """The messages the next turn of this session will carry (within its memory window)."""
        row = self._row(guid)
        window = row["memory_window"] if row["memory_window"] is not None else self._lab.memory_window
        if window == 0:
            return []
        messages = self._lab.store.session_messages(guid, last=window)
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    # async twins: the same methods, awaited without blocking the caller's event loop
    acreate = async_twin(create, writes=True)
    aget = async_twin(get)
    afind = async_twin(find)
    alist = async_twin(list)
    ahistory = async_twin(history)


def _session(row: dict[str, Any], messages: list[dict[str, Any]] | None = None) -> Session:
    return Session(guid=row["guid"], action=row["action_guid"], ext_user_id=row["ext_user_id"],
                   name=row["name"], memory_window=row["memory_window"], created_at=row["created_at"],
                   messages=[{"role": m["role"], "content": m["content"]} for m in messages or []])
