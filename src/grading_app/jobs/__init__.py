"""Jobs, submissions and uploads."""
