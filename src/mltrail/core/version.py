"""The package version, kept in core so every layer (the server's OpenAPI title, the CLI) can
read it without importing the package face upward."""

__version__ = "0.1.0"
