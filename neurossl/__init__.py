"""neurossl: self-supervised foundation models for 3-D brain imaging."""

__version__ = "0.1.0"
