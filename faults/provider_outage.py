"""`provider-outage`: the recording provider fails or slows a fraction of deliveries; heal restores it.

The provider is the node the stack file names in `x-chaos.provider`. It stays the ground truth: it
records only the deliveries it accepted. This is the fault that exposes a sender that drops what it
could not deliver (incident 5).
"""

from __future__ import annotations

from faults.base import Effect, Fault, Param, register


@register
class ProviderOutage(Fault):
    name = "provider-outage"
    summary = "the recording provider answers 503 to a fraction of deliveries (and/or delays them)"
    params = (
        Param("fail_rate", float, 1.0, help="fraction of deliveries refused with 503 (0..1)",
              unit="fraction", bounds=(0, 1), search=(0.1, 1.0)),
        Param("delay_ms", int, 0, help="delay added to every delivery", unit="ms", bounds=(0, 600_000),
              search=(0, 3000)),
    )
    targets_kind = "none"
    needs_targets = False

    def _control(self, fail_rate: float, delay_ms: int) -> None:
        import requests

        from harness.errors import HarnessError

        provider = self._provider()
        url = f"http://127.0.0.1:{self.ctx.stack.host_port(provider.node, provider.port)}/control"
        response = requests.post(url, json={"fail_rate": fail_rate, "delay_ms": delay_ms,
                                            "seed": int(self.ctx.step) if str(self.ctx.step).isdigit() else 0},
                                 timeout=10)
        if response.status_code >= 300:
            raise HarnessError(f"{provider.node}: POST /control answered {response.status_code}: {response.text[:200]}")

    def _provider(self):
        from harness.errors import HarnessError

        app = self.ctx.stack.topology.app
        if app is None:
            raise HarnessError("provider-outage: the stack declares no provider (x-chaos.provider)")
        return app.provider

    def inject(self) -> Effect:
        self._control(self.p["fail_rate"], self.p["delay_ms"])
        return Effect((self._provider().node,), {"fail_rate": self.p["fail_rate"], "delay_ms": self.p["delay_ms"]})

    def heal(self) -> Effect:
        self._control(0.0, 0)
        return Effect((self._provider().node,), {"fail_rate": 0.0, "delay_ms": 0})
