"""The operators' web page, served by the service itself (`routes.make_router`).

HTML shells rendered by jinja2 (no data in them) and a small vanilla JS module that fills
them from JSON and keeps them live by short polling; charts by uPlot, served from the
checkout's node_modules (installed by the Makefile's ``npm ci``): no CDN, every asset local.
"""
