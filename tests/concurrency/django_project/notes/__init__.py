"""The project's one app: a `Note` model for the ORM calls to write and count."""
