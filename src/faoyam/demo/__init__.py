"""The demo: a demo account with simulated cameras, started by ``faoyam demo`` (``./run``)."""
