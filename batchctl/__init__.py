"""batchctl: the command-line client of batchd (standard library only, so it starts fast)."""
