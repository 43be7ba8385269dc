"""What every stage shares, in numpy only (no torch, so the Lava processes can import it):
the graph IR, fan-outs, operation counts, the neuron dynamics and the schedule."""
