"""E-mail of documents (invoices, credit notes, and payments' receipts and requests): one outbox
row per message, sent by Celery after commit, retried, refusals recorded (see services)."""
