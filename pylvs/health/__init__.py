"""Health checks of real servers, as ldirectord runs them (and keepalived's MISC_CHECK)."""
