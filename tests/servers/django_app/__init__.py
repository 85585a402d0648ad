"""A minimal Django project served through crossgate by the server tests."""
