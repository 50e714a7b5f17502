"""The control API's handlers, one module per group of routes; app.py maps paths to them.

- projects.py: import a project (JSON or the samples table itself), list projects.
- workflows.py: create and submit a workflow, its status, the dashboard of all of them.
- jobs.py: one workflow's jobs: list, cancel, resubmit, their attempts and logs.
- service.py: the daemon and its backend: ping, queues, job definitions, shutdown.

A handler's function name is part of the API: limits.py and validation.py look up its body
limit and allowed fields by it, and access.py its audit action.
"""
