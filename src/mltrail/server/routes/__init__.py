"""One router module per resource under ``/api/v1``."""
