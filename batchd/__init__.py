"""batchd: run and monitor very large numbers of jobs on AWS Batch."""

__version__ = "0.1.0"
