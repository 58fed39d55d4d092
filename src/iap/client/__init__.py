"""Python client for the iap REST API."""

from iap.client.client import IapClient, IapError

__all__ = ["IapClient", "IapError"]
