"""train stage of the hoprec pipeline."""
