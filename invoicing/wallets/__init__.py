"""Wallets and prepaid credits (Lago's semantics): balances in credits and in the wallet's
currency, a ledger of inbound and outbound transactions, recurring top-up rules, and the one
entry point the billing pipeline calls (consumption.invoice_apply_prepaid_credits)."""
