"""iap: a self-hostable image analysis platform."""

__version__ = "0.1.0"
