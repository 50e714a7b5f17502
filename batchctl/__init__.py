"""batchctl: the command-line client of batchd (standard library only, so it starts fast)."""

# batchctl never imports batchd: the version both report is batchshared's (pyproject reads
# it from there too).
from batchshared import __version__

__all__ = ["__version__"]
