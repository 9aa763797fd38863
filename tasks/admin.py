"""Django admin for the tasks app (its models register here as they are added)."""
