"""Money collected: payments against finalized invoices."""
