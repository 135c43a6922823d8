"""Late usage (issue 15): lineage of every fee, marks of finalized periods that received late
events, re-rating into correction invoices or credit notes, and what-if re-rating."""
