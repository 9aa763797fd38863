"""Django admin for the backups app (its models register here as they are added)."""
