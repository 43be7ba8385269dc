"""Lava runtime: our Processes/ProcessModels (``procs/``, numpy only) and the network builder
that wires them from a netx file. Nothing here imports torch."""
