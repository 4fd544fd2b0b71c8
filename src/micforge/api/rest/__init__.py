"""The REST API of API.md on Flask: ``create_app(config, services=...)``."""

from micforge.api.rest.app import create_app

__all__ = ["create_app"]
