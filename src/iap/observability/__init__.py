"""Watching iap run: Prometheus metrics, structured logs with request ids, and the request
middleware that feeds both.

- ``metrics``: the metric objects, their exposition (``GET /metrics``, ``iap worker
  --metrics-port``) and the multi-process directory that lets several processes answer as one.
- ``logs``: one log format (console or JSON) for every logger of a process.
- ``context``: the request id, from the HTTP request into the log context and across the broker
  into the worker that runs the request's jobs.
- ``middleware``: times each request, labels it by route template, logs one line for it.
"""
