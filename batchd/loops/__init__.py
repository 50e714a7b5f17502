"""The daemon's loops: submitter, poller, output checker and stuck watcher. Each takes its
dependencies explicitly; the daemon supervises them."""
