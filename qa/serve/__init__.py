"""``qa serve``: the run store behind HTTP, as pages and a JSON API from the same queries.

One process over one store (embedded DuckDB): server-rendered pages built from the report's section
builders (:mod:`qa.report`), trends per annotator and category across runs, and a JSON API to submit
a batch and poll its verdict. Jobs run one at a time, each in a worker process that calls
:func:`qa.run` with the store (a single writer). See docs/serve.md.

Modules: :mod:`~qa.serve.app` (the Starlette application and its routes), :mod:`~qa.serve.pages`
(HTML handlers), :mod:`~qa.serve.api` (JSON handlers and the OpenAPI document), :mod:`~qa.serve.jobs`
(the persistent queue and its worker), :mod:`~qa.serve.uploads` (checks on submitted batches),
:mod:`~qa.serve.auth` (the token), :mod:`~qa.serve.charts` (inline SVG trend charts).

Starlette and uvicorn are the ``serve`` extra (``pip install 'annotation-qa[serve]'``); nothing here is
imported by ``import qa`` or ``qa --help``.
"""
