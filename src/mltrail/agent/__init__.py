"""mltrail.agent."""
