"""mltrail.integrations."""
