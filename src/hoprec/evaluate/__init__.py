"""evaluate stage of the hoprec pipeline."""
