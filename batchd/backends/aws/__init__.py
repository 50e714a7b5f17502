"""The AWS Batch backend (aiobotocore), its error classification, request shapes, S3 output
checks and the account-wide rate budget."""
