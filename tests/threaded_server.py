"""A media-worker-like ASGI server in a thread of its own, for tests that need a second
process's worth of service (the media worker) next to the web app without spawning one.

It gets its own event loop and its own :class:`~faoyam.core.context.Context` built from the
same settings — separate database connections and key material, as the separate process is
in production — and serves under uvicorn on a free port. Subclasses say what to serve::

    class Worker(ThreadedServer):
        async def build(self, ctx):
            self.live = LiveServer(...)
            return self.live.app

    worker = Worker(settings); worker.start(); ...; worker.stop()
"""

from __future__ import annotations

import asyncio
import threading

import uvicorn

from faoyam.core.context import Context


class ThreadedServer:
    """uvicorn in a daemon thread; ``port`` is known once :meth:`start` returns."""

    name = "worker"

    def __init__(self, settings):
        self.settings = settings
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    async def build(self, ctx: Context):
        """The ASGI app to serve (called in the server's own loop)."""
        raise NotImplementedError

    async def cleanup(self) -> None:
        """After the server stopped, before the context closes."""

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() instead of dying silently
            self.failure = exc
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        ctx = Context.build(self.settings)
        try:
            app = await self.build(ctx)
            config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                                    log_config=None, lifespan="on", ws="websockets-sansio")
            self.server = uvicorn.Server(config)
            task = asyncio.create_task(self.server.serve())
            while not self.server.started:
                if task.done():
                    await task  # raises what stopped it
                    raise RuntimeError(f"{self.name}: uvicorn stopped before it started")
                await asyncio.sleep(0.02)
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
            self.ready.set()
            await task
        finally:
            await self.cleanup()
            await ctx.close()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(20) or self.failure is not None:
            raise RuntimeError(f"the {self.name} did not start") from self.failure

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(15)
