"""task stage of the hoprec pipeline."""
