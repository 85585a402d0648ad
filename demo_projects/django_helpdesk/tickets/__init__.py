"""The `tickets` Django app: tickets, their comments and attachments."""
