"""Django admin for the pools app (its models register here as they are added)."""
