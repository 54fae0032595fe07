"""Fault injectors: each a small object with inject() and heal(), found by name in a registry."""
