"""Notebooks as tests: discovery, clean-output checks, and running them locally or in a lab."""
