"""No models of its own: users, groups and permissions are Django's (``django.contrib.auth``).

The module exists so that Django sends this app its ``post_migrate`` signal, which syncs the
groups (accounts/apps.py).
"""
