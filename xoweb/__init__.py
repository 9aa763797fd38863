"""xoweb: backups of XCP-ng / XenServer pools."""

from xoweb.celery import app as celery_app

__all__ = ("celery_app",)
