"""mobiledr: a retinal-screening classifier from training to a smartphone."""

__version__ = "0.1.0"
