"""mltrail.server."""
