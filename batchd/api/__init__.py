"""The control API on the Unix socket: routes, request limits, access policy, observability."""
