"""orderhooks."""
