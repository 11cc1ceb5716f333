"""models stage of the hoprec pipeline."""
