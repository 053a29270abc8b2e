"""A client that uploads to SRM Studio without signing in, as issue 23's attack did.

It mints its own XSRF token (Streamlit takes any token that matches its cookie), opens a
websocket session, asks for an upload address with a ``file_urls_request`` (which never runs
the app's script, so no page ever asks it to sign in) and PUTs a file there as a browser's
uploader does (multipart, the token in ``X-Xsrftoken``). Before ``webapp/auth.py`` guarded
Streamlit's upload endpoint, each file was kept in the app's memory while the socket stayed
open. Used by tests/webapp/test_auth.py and ``bench/reliability.py --parts upload``; from the
repository's root,

    python -m tests.upload_client http://127.0.0.1:PORT [MEGABYTES]

makes one PUT of MEGABYTES (default 1, in Streamlit's unit of 2**20 bytes) and prints its
status code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

MB = 2**20  # Streamlit's server.maxUploadSize counts these


@dataclass
class SignedOutSession:
    """A websocket session with the app that has never signed in, and an HTTP client that
    carries its XSRF token."""

    base: str
    xsrf: str
    socket: websockets.ClientConnection
    http: httpx.AsyncClient
    _asked: int = field(default=0, repr=False)

    async def upload_address(self, name: str = "big.jsonl", timeout: float = 60) -> str:
        """The path Streamlit gives this session to PUT a file called ``name`` to."""
        self._asked += 1
        request_id = f"r{self._asked}"
        ask = BackMsg()
        ask.file_urls_request.request_id = request_id
        ask.file_urls_request.file_names.append(name)
        await self.socket.send(ask.SerializeToString())
        async with asyncio.timeout(timeout):
            while True:
                message = ForwardMsg()
                message.ParseFromString(await self.socket.recv())
                answer = message.file_urls_response
                if message.WhichOneof("type") == "file_urls_response" and (
                    answer.response_id == request_id
                ):
                    return answer.file_urls[0].upload_url

    async def put(self, address: str, body: bytes, name: str = "big.jsonl") -> int:
        """PUT ``body`` as file ``name`` to ``address``; the status code."""
        response = await self.http.put(
            self.base + address,
            files={"file": (name, body, "application/json")},
            headers={"X-Xsrftoken": self.xsrf, "Cookie": f"_streamlit_xsrf={self.xsrf}"},
        )
        return response.status_code


@contextlib.asynccontextmanager
async def signed_out_session(base: str) -> AsyncIterator[SignedOutSession]:
    """A :class:`SignedOutSession` with the app at ``base`` (``http://HOST:PORT``), open while
    the block runs."""
    xsrf = generate_xsrf_token_string()  # minted by the client itself
    async with (
        websockets.connect(
            base.replace("http://", "ws://") + "/_stcore/stream",
            subprotocols=["streamlit", xsrf],
            origin=base,
            additional_headers={"Cookie": f"_streamlit_xsrf={xsrf}"},
            max_size=None,
        ) as socket,
        httpx.AsyncClient(timeout=300) as http,
    ):
        yield SignedOutSession(base, xsrf, socket, http)


async def put_once(base: str, megabytes: float = 1) -> tuple[int, float]:
    """One PUT of ``megabytes`` from a new signed-out session: its status code and seconds."""
    async with signed_out_session(base) as session:
        address = await session.upload_address()
        began = time.perf_counter()
        status = await session.put(address, b"x" * int(megabytes * MB))
        return status, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the app, http://HOST:PORT")
    parser.add_argument("megabytes", type=float, nargs="?", default=1)
    args = parser.parse_args()
    status, _ = asyncio.run(put_once(args.base, args.megabytes))
    print(status)


if __name__ == "__main__":
    main()
