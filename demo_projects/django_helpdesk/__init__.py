"""A small legacy Django helpdesk, migrated to ASGI one stage at a time with crossgate.

Stage 0 is `wsgi.py` under gunicorn; stage 1 wraps that same application in `WSGIToASGI`
(`stage1.py`); stages 2 and 3 (`stage2.py`, `stage3.py`) add websockets and new async views
beside it. `python -m demo_projects.django_helpdesk serve --stage N` runs any of them.
"""
