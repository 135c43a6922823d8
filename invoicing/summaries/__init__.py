"""Summary rows the console's dashboard reads instead of scanning every invoice."""
