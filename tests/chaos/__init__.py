"""`make chaos`: SIGKILLs, PowerOffice faults, a broker and a database lost, on real processes (see run.py)."""
