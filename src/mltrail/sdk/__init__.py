"""mltrail.sdk."""
