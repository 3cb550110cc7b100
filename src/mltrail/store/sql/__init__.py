"""mltrail.store.sql."""
