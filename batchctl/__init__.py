"""batchctl: the command-line client of batchd (standard library only, so it starts fast)."""

# Kept equal to batchd.__version__ and pyproject's version by tests/unit/test_batchctl_layout.py
# (batchctl never imports batchd, so it cannot ask it).
__version__ = "0.1.0"
