"""A real HTTP receiver on loopback that verifies every delivery with standardwebhooks' Webhook.verify."""

import asyncio
import json
import socket
from collections import Counter
from dataclasses import dataclass, field

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Receiver:
    port: int
    secrets: list[str] = field(default_factory=list)
    replies: list[tuple[int, dict]] = field(default_factory=list)  # next answers; then 204
    received: list[dict] = field(default_factory=list)  # verified deliveries
    rejected: int = 0
    hits: Counter = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items()}
        self.hits[headers.get("webhook-id")] += 1
        verified = None
        for secret in self.secrets:
            try:
                verified = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError:
                continue
        if verified is None:
            self.rejected += 1
            return Response(status_code=401)
        status, extra = self.replies.pop(0) if self.replies else (204, {})
        self.received.append(
            {
                "id": headers["webhook-id"],
                "body": json.loads(body),
                "status": status,
                "signatures": headers["webhook-signature"].split(" "),
                "host": headers.get("host"),
            }
        )
        return Response(status_code=status, headers=extra)

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len({r["id"] for r in self.received}) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"only {len(self.received)} of {count} deliveries arrived")
            await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_receiver() -> tuple[Receiver, uvicorn.Server, asyncio.Task]:
    receiver = Receiver(port=free_port())
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_level="warning", access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return receiver, server, task
