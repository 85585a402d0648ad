"""Conformance: Starlette's and Flask's own test suites, run through crossgate's adapters.

`conformance.plugin` wraps the app under test; `conformance.run` fetches the suites, runs them
once per mode and compares with ``expected-losses.toml``. Not part of the crossgate package.
"""
