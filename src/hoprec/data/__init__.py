"""data stage of the hoprec pipeline."""
