"""graph stage of the hoprec pipeline."""
