"""pylvs: a userspace Linux Virtual Server (IPVS) in Python."""

__version__ = "0.1.0"
