"""The training engine: fit, evaluate, losses and attacks. It knows no analysis module."""
