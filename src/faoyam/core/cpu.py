"""CPU-heavy work off the event loop: argon2, zxcvbn, Pillow.

One bounded thread pool for the process. argon2 and Pillow's codecs release the GIL, so
they run truly in parallel; zxcvbn does not, but in a thread it no longer stalls every other
request for its whole run. The pool's size is the back-pressure: a burst of sign-ins
queues here instead of starving the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="faoyam-cpu")


async def offload(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in the CPU pool; its exceptions are raised here."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)
