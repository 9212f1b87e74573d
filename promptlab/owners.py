"""Who is doing a piece of work (a run's lease, a pending generation), and whether they are gone.

An owner is ``host:pid:token``. On the same machine a dead process is detected at once (its pid
no longer exists); on another machine only by time (leases expire; a pending generation older
than any call deadline cannot still be running).
"""

from __future__ import annotations

import os
import socket
import uuid


def process_owner() -> str:
    """A new owner id for this process: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` is a process of this machine that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed process whose parent never collected it (common in containers, whose first
    process may not reap orphans) still has a pid: on Linux its state says it is dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in (b"Z", b"X")


__all__ = ["process_owner", "owner_is_dead"]
