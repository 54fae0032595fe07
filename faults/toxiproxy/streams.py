"""The two directions of a proxied connection, by the names Toxiproxy's API gives them ("stream")."""

UPSTREAM = "upstream"  # client -> server
DOWNSTREAM = "downstream"  # server -> client
STREAMS = (UPSTREAM, DOWNSTREAM)
