"""Lava Processes and ProcessModels of lava-bitsnn. Lava executes every module of this folder
to discover models, so it holds only these lean numpy + lava modules."""
