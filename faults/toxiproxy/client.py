"""A small Toxiproxy 2.x HTTP client with a timeout on every call; works with this package's server and Shopify's.

Every failure (unreachable, slow, or an API error) becomes one `HarnessError` with one readable line.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import requests

from harness.errors import HarnessError


class ToxiproxyClient:
    """`ToxiproxyClient("http://127.0.0.1:8474").add_toxic("redis", "latency", latency=200)`."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # Toxiproxy is local or in Docker: never go through an HTTP(S)_PROXY

    # server
    def version(self) -> str:
        """The server's version string (Toxiproxy >= 2.6 answers JSON, older ones plain text)."""
        response = self._call("GET", "/version")
        try:
            return str(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            return response.text.strip()

    def wait_ready(self, deadline_s: float) -> str:
        """Poll GET /version until the server answers; return its version or raise saying what was awaited."""
        give_up = time.monotonic() + deadline_s
        last = "no attempt"
        while True:
            attempt_s = max(0.05, min(self.timeout, 1.0, give_up - time.monotonic()))
            try:
                response = self._session.get(self.url + "/version", timeout=attempt_s)
                if response.ok:
                    return self.version()
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = _reason(exc)
            if time.monotonic() >= give_up:
                raise HarnessError(f"toxiproxy at {self.url} did not answer GET /version within {deadline_s:g}s "
                                   f"(last: {last})")
            time.sleep(0.05)

    def server_features(self) -> frozenset[str]:
        """What the server does beyond Toxiproxy's API (GET /faults/server, ours alone); a real Toxiproxy
        answers 404 there and has none."""
        try:
            response = self._session.get(self.url + "/faults/server", timeout=self.timeout)
        except requests.Timeout:
            raise HarnessError(f"toxiproxy at {self.url} did not answer GET /faults/server within "
                               f"{self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise HarnessError(f"toxiproxy at {self.url} is unreachable (GET /faults/server): {_reason(exc)}") \
                from None
        if response.status_code == 404:
            return frozenset()
        try:
            return frozenset(str(name) for name in response.json().get("features", []))
        except (ValueError, AttributeError, TypeError):
            return frozenset()

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # proxies
    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/proxies").json()

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> dict[str, Any]:
        """Listen like "0.0.0.0:25672" to be reachable from other containers; port 0 picks a free one."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._call("POST", "/proxies", body).json()

    def populate(self, proxies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create or replace proxies in one call (kept as they are if listen and upstream are unchanged)."""
        return self._call("POST", "/populate", [dict(p) for p in proxies]).json()["proxies"]

    def get_proxy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/proxies/{_seg(name)}").json()

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Disabling closes the listener and every open connection; enabling listens again."""
        return self._call("POST", f"/proxies/{_seg(name)}", {"enabled": enabled}).json()

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{_seg(name)}")

    # toxics
    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/proxies/{_seg(proxy)}/toxics").json()

    def add_toxic(self, proxy: str, type: str, stream: str = "downstream", toxicity: float = 1.0,
                  name: str | None = None, **attributes: int) -> dict[str, Any]:
        """Add a toxic; its name defaults to "<type>_<stream>". Returns the toxic as the server stored it."""
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        if name is not None:
            body["name"] = name
        return self._call("POST", f"/proxies/{_seg(proxy)}/toxics", body).json()

    def update_toxic(self, proxy: str, name: str, toxicity: float | None = None, **attributes: int) -> dict[str, Any]:
        """Change some attributes and/or the toxicity; the others keep their values."""
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._call("POST", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}", body).json()

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}")

    # plumbing
    def _call(self, method: str, path: str, body: Any = None) -> requests.Response:
        what = f"{method} {path}"
        try:
            response = self._session.request(method, self.url + path, json=body, timeout=self.timeout)
        except requests.Timeout:
            raise HarnessError(f"toxiproxy at {self.url} did not answer {what} within {self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise HarnessError(f"toxiproxy at {self.url} is unreachable ({what}): {_reason(exc)}") from None
        if response.status_code >= 400:
            raise HarnessError(f"toxiproxy {what} -> {response.status_code}: {_api_error(response)}")
        return response

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seg(name: str) -> str:
    return quote(name, safe="")


def _api_error(response: requests.Response) -> str:
    """Toxiproxy's {"error": ..., "status": ...} body (sent as text/plain by Go's http.Error) or its first line."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        text = response.text.strip().splitlines()
        return text[0] if text else response.reason or "no body"


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, e.g. "[Errno 111] Connection refused", instead of urllib3's nested repr."""
    cause: BaseException = exc
    while cause.__context__ is not None or (cause.args and isinstance(cause.args[0], BaseException)):
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else cause.__context__
        if nested is None or nested is cause:
            break
        cause = nested
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return text
