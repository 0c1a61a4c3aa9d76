"""An in-process transport that behaves like a real server: the client gets the response as soon as the app has
sent it, while the app goes on with its background tasks (httpx's ASGITransport waits for them first, which hides
a test that reads results before they exist)."""

import asyncio

import httpx


class ResponseFirstTransport(httpx.AsyncBaseTransport):
    def __init__(self, app, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client
        self.running: set[asyncio.Task] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([chunk async for chunk in request.stream])
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port or 80),
            "client": self.client,
            "root_path": "",
            "state": {},
        }
        started: dict = {}
        chunks: list[bytes] = []
        complete = asyncio.Event()
        body_sent = False

        async def receive() -> dict:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    complete.set()

        task = asyncio.create_task(self.app(scope, receive, send))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        waiter = asyncio.create_task(complete.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not complete.is_set():
            waiter.cancel()
            await task  # raises what the app raised
            raise AssertionError("the app returned without a complete response")
        return httpx.Response(started["status"], headers=started.get("headers", []), content=b"".join(chunks))

    async def aclose(self) -> None:
        """What is still running (background tasks) finishes before the test's cleanup."""
        await asyncio.gather(*self.running, return_exceptions=True)
