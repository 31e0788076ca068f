"""A local PowerOffice Go v2 imitation (HTTP, in-memory ledger) for tests and the demo.

Start it with `SandboxServer` (tests) or `vb2po sandbox` / `python -m sandbox` (demo).
"""
