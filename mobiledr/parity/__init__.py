"""Numerical parity: every artifact of a bundle against the PyTorch reference (``mobiledr parity``)."""
