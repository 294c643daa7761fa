"""Loopback stand-ins for the external APIs coral-infra drives (RunPod, ...).

They speak the real wire format so tests and the local sandbox demo exercise the same code
paths as production, without network access or accounts.
"""
