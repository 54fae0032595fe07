"""A Toxiproxy-2.x-compatible fault proxy (pure standard library) and a small HTTP client for it.

Light on purpose: import `faults.toxiproxy.server` to run the proxy, `faults.toxiproxy.client` to drive
one (this package or a real Shopify Toxiproxy). See API.md for what is covered.
"""

DEFAULT_API_PORT = 8474
