"""Local servers for the cloud connector tests, all on 127.0.0.1 and started by the tests.

- moto in server mode (S3, CloudWatch), in this process;
- Azurite (blob storage), a Node program installed by .ci/run into tests/.node/;
- gcp-storage-emulator (Cloud Storage), in this process;
- `ApiServer`: a small HTTP server answering the documented REST responses of the APIs that have
  no emulator (Cost Management, Cloud Billing and Catalog, BigQuery, the token endpoints);
- `Proxy`: forwards to another local server, recording requests and injecting faults
  (throttling, 403, a connection cut mid-body), to test retries, resumption and permissions.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO / "tests" / ".node" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

logging.getLogger("werkzeug").setLevel(logging.ERROR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# -- moto ----------------------------------------------------------------------------------------

class Moto:
    """moto's threaded server; its state is reset between test modules."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.port = port
        self.url = f"http://{host}:{port}"
        wait_for_port(port)

    def reset(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/moto-api/reset")
        conn.getresponse().read()
        conn.close()

    def stop(self) -> None:
        self.server.stop()


# -- a generic local HTTP server -------------------------------------------------------------------

Route = Callable[["Request"], tuple[int, object, dict[str, str]] | None]


class Request:
    """One request as the fake APIs see it."""

    def __init__(self, method: str, target: str, headers, body: bytes):
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.headers = headers
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, self.headers, body)
        self.server.log.append(request)
        result = None
        for route in list(self.server.routes):
            result = route(request)
            if result is not None:
                break
        if result is None:
            result = (404, {"error": {"code": 404, "message": f"no route for {self.command} {request.path}"}}, {})
        status, payload, headers = result
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        headers = dict(headers)
        headers.setdefault("Content-Type", "application/json" if not isinstance(payload, bytes) else "application/octet-stream")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class ApiServer:
    """A local HTTP server whose answers come from route functions (first non-None wins)."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = []
        self.httpd.log = []
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def log(self) -> list[Request]:
        return self.httpd.log

    def route(self, fn: Route) -> Route:
        self.httpd.routes.append(fn)
        return fn

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- a recording, fault-injecting proxy ---------------------------------------------------------

Fault = Callable[[str, str, dict], tuple[int, bytes, dict] | str | None]


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _forward(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "proxy-connection")}
        server.log.append((self.command, self.path, headers))
        fault = server.fault(self.command, self.path, headers) if server.fault else None
        if isinstance(fault, tuple):
            status, data, extra = fault
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        conn = http.client.HTTPConnection("127.0.0.1", server.upstream_port, timeout=30)
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "cut" and self.command == "GET" and len(data) > 1:
            # Send half the body, then drop the connection: a stream cut mid-download.
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward


class Proxy:
    """Forwards to 127.0.0.1:<upstream>; `fault(method, path, headers)` may answer instead."""

    def __init__(self, upstream_port: int):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.httpd.daemon_threads = True
        self.httpd.upstream_port = upstream_port
        self.httpd.log = []
        self.httpd.fault = None
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def log(self) -> list[tuple[str, str, dict]]:
        return self.httpd.log

    def set_fault(self, fault: Fault | None) -> None:
        self.httpd.fault = fault

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- Azurite and the Cloud Storage emulator ---------------------------------------------------------

class Azurite:
    """azurite-blob on a free port with its data in a temporary folder."""

    def __init__(self, location: Path):
        if shutil.which("node") is None or not AZURITE_BIN.exists():
            pytest.skip(f"Azurite is not installed ({AZURITE_BIN}); .ci/run installs it with npm")
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(location),
             "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise
        self.blob_endpoint = f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def connection_string(self, endpoint: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint or self.blob_endpoint};"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class GcsEmulator:
    """gcp-storage-emulator in this process, in memory."""

    def __init__(self):
        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
        self.port = free_port()
        self.server = create_server("127.0.0.1", self.port, in_memory=True)
        self.server.start()
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def clear_cloud_environment(monkeypatch) -> None:
    """Remove every variable through which an SDK could find real credentials or endpoints."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "MSI_", "IDENTITY_")) or name in (
            "STORAGE_EMULATOR_HOST", "API_ENDPOINT_OVERRIDE",
        ):
            monkeypatch.delenv(name, raising=False)
