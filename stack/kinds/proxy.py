"""The Toxiproxy-compatible proxy: serving when its API answers GET /version."""

from __future__ import annotations

from stack.kinds.base import Kind, register_kind
from stack.topology import PROXY_API_PORT


@register_kind
class Proxy(Kind):
    name = "proxy"

    def serving(self, stack, node: str) -> tuple[bool, str]:
        import requests

        response = requests.get(f"http://127.0.0.1:{stack.host_port(node, PROXY_API_PORT)}/version", timeout=2)
        return response.status_code == 200, f"GET /version -> {response.status_code}"

    def checks(self, stack, nodes):
        from stack.health import Check

        return [Check(f"{n.name} API answers", n.name, lambda s, name=n.name: self.serving(s, name)) for n in nodes]
