"""The client's address, honouring X-Forwarded-For only from configured trusted proxies."""

from ipaddress import ip_address

from starlette.requests import Request

from app.infra.config import settings


def _trusted(addr: str) -> bool:
    try:
        ip = ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in settings.trusted_proxy_networks)


def client_address(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    if not settings.trusted_proxy_networks or not _trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    # Walk from the nearest hop back; the first address that is not one of our proxies is the client.
    for hop in reversed(hops):
        if not _trusted(hop):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer
    return peer
