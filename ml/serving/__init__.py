"""Serve stage: the scoring API. `app` holds the routes, `schemas` the request/response models and
the OpenAPI input rules, `guard` the HTTP protections in front of them."""

from ml.serving.app import create_app
from ml.serving.guard import timed_protocol

__all__ = ["create_app", "timed_protocol"]
