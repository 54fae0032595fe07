"""The recording provider the harness observes deliveries through (see sink.py)."""
