"""serve stage of the hoprec pipeline."""
