"""bosun as a standing service: flocks that run until stopped, managed over mobu's REST API.

One process, one event loop: uvicorn serves the API (``app.py``) on the loop where the
monkeys run (``manager.py``, over ``library.flock``'s engine pieces); handlers stay thin over
the services they are given (``Services``), so what is added later (metrics, reports,
alerts, Dask shards) plugs into the same objects.
"""
