"""Console scripts: bitsnn-train (and, as the pipeline grows, export/run/verify/energy)."""
