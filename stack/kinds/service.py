"""A generic app service (any role no other kind claims): serving when `GET /health` on its HTTP_PORT is 2xx."""

from __future__ import annotations

from stack.kinds.base import Kind, register_kind


@register_kind
class Service(Kind):
    name = "service"
    service = True

    def serving(self, stack, node: str) -> tuple[bool, str]:
        port = int(stack.topology.node(node).env.get("HTTP_PORT", "8080"))
        script = ("import urllib.request,sys;r=urllib.request.urlopen('http://127.0.0.1:%d/health',timeout=3);"
                  "sys.stdout.write(r.read().decode())" % port)
        code, out = stack.exec(node, ["python3", "-c", script], timeout=6)
        return code == 0, out.strip().splitlines()[-1][:200] if out.strip() else f"exit {code}"

    def checks(self, stack, nodes):
        from stack.health import Check

        return [Check(f"{n.role} {n.name} /health answers", n.name, lambda s, name=n.name: self.serving(s, name))
                for n in nodes]
