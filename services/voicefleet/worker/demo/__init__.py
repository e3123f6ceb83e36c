"""The demo page at `/`: talk to the fleet from a browser, with nothing to build or install.

One static HTML page with plain JavaScript. It connects to `/v1/realtime` on the host that served it, exactly as a
browser connects to OpenAI, so it shows the client side of the protocol as well as the fleet's extensions
(`fleet.session`, `fleet.playback`, resume, `fleet.migrate`).
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

# Read once: the page is a constant of the installed package.
PAGE = files(__name__).joinpath("index.html").read_bytes()


async def demo_page(request: Request) -> Response:
    # no-store: a page cached from an older deploy would speak an older version of the extensions.
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})


route = Route("/", demo_page, methods=["GET"])
