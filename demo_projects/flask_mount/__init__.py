"""A legacy Flask app mounted at ``/legacy`` of a new Starlette app, in one uvicorn process."""
