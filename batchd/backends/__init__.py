"""Job backends: `local` (processes on this machine) and `aws` (AWS Batch via aiobotocore)."""
