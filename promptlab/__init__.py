"""promptlab: notebook-first prompt experimentation, offline by default."""

__version__ = "0.1.0"
