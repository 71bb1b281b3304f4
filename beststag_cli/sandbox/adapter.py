"""A `requests` transport adapter that serves requests with the sandbox WSGI app, in-process."""

from __future__ import annotations

import io
import sys
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPResponse

from .app import DropConnection


class WSGIAdapter(BaseAdapter):
    """Mount on a session prefix: `session.mount("http://sandbox.beststag.local/", WSGIAdapter(app))`."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        raw_target = url.path + ("?" + url.query if url.query else "")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": (request.method or "GET").upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": url.path,
            "REQUEST_URI": raw_target,
            "QUERY_STRING": url.query,
            "SERVER_NAME": url.hostname or "localhost",
            "SERVER_PORT": str(url.port or (443 if url.scheme == "https" else 80)),
            "HTTP_HOST": url.netloc,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
        }
        for k, v in request.headers.items():
            key = k.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ[key] = v
            elif key not in ("CONTENT_LENGTH", "HOST"):
                environ["HTTP_" + key] = v
        status_headers: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status_headers[:] = [status, headers]

        try:
            chunks = self.app(environ, start_response)
            data = b"".join(chunks)
        except DropConnection:
            raise requests.ConnectionError(
                "Connection aborted: the sandbox dropped the connection (fault injection)", request=request
            ) from None
        status, headers = status_headers
        resp = requests.Response()
        resp.status_code = int(status.split(" ", 1)[0])
        resp.reason = status.partition(" ")[2]
        resp.headers = CaseInsensitiveDict(headers)
        resp.raw = HTTPResponse(
            body=io.BytesIO(data),
            headers=headers,
            status=resp.status_code,
            reason=resp.reason,
            preload_content=False,
            request_url=request.url,
        )
        resp.encoding = requests.utils.get_encoding_from_headers(resp.headers)
        resp.url = request.url or ""
        resp.request = request
        resp.connection = self  # type: ignore[assignment]  # requests types it HTTPAdapter; any adapter works
        return resp

    def close(self) -> None:
        pass
