"""Entitlements (Lago's, free since October 2025): features with typed privileges, granted by plans
and overridden or removed per subscription, so a product can ask "may this customer use feature X,
and up to what limit?" (GET /subscriptions/{external_id}/entitlements)."""
