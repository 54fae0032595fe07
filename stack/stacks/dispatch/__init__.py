"""The reference dispatch app (API, scheduler, sender workers): one user of the harness among others.

It is package data of the harness, not package code: no engine module imports it. Its stack files are
`../default.yaml` and `../small.yaml`; its image is built from this folder (the Dockerfile here), as any
team's service is built from its stack file's `build:`.
"""
