"""forensics: offline forensics analyzer for container images."""

__version__ = "0.1.0"
