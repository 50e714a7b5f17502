"""batchd: run and monitor very large numbers of jobs on AWS Batch."""

from batchshared import __version__

__all__ = ["__version__"]
