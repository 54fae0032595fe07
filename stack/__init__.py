"""The system under test: images built without a registry, topology, health, teardown."""
