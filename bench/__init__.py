"""crossgate's benchmark: ``WSGIToASGI`` against a2wsgi, asgiref and a native ASGI app.

Run it with ``make bench`` (or ``bash bench/run``; ``--quick`` for a smoke run). Every figure is
measured in the same run and printed as ratios, so the numbers compare on any machine.
"""
