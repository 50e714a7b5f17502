"""The local backend: jobs run as processes on this machine, with AWS Batch's shapes."""
