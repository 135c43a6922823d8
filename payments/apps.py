from django.apps import AppConfig

from billing_project.periodic import PeriodicTaskSpec


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    periodic_tasks = [
        PeriodicTaskSpec(
            name="payments: retry failed payments",
            task="payments.tasks.retry_failed_payments",
            minute="15",
            description="every hour at :15 UTC: automatic retries due, pending attempts re-sent, lost collections",
        ),
        PeriodicTaskSpec(
            name="payments: flag overdue invoices",
            task="payments.tasks.flag_overdue_invoices",
            minute="30",
            hour="0",
            description="every day at 00:30 UTC: set or clear payment_overdue",
        ),
        PeriodicTaskSpec(
            name="payments: resend pending refunds",
            task="payments.tasks.resend_pending_refunds",
            minute="45",
            description="every hour at :45 UTC: credit note refunds left pending re-sent or started",
        ),
        PeriodicTaskSpec(
            name="payments: dunning campaign steps",
            task="payments.tasks.run_dunning_campaigns",
            minute="0",
            hour="7",
            description="every day at 07:00 UTC: the default dunning campaign's steps due today (a payment "
            "request e-mailed per customer and currency, cards retried where the step says so)",
        ),
    ]

    def ready(self) -> None:
        from djstripe.models import Event
        from djstripe.signals import WEBHOOK_SIGNALS

        from customers.signals import customer_saved
        from invoicing.mail.documents import document_type_register
        from invoicing.signals import credit_note_refund_requested, invoice_finalized

        from . import receivers
        from .payment_requests import payment_request_message
        from .providers import stripe as stripe_provider
        from .receipts import payment_receipt_message

        # E-mails of payments' documents, sent by invoicing's outbox.
        document_type_register("payment_receipt", payment_receipt_message)
        document_type_register("payment_request", payment_request_message)

        stripe_provider.configure()
        customer_saved.connect(receivers.on_customer_saved, dispatch_uid="payments.on_customer_saved")
        invoice_finalized.connect(receivers.on_invoice_finalized, dispatch_uid="payments.on_invoice_finalized")
        credit_note_refund_requested.connect(
            receivers.on_credit_note_refund_requested, dispatch_uid="payments.on_credit_note_refund_requested"
        )
        for event_type in receivers.HANDLED_STRIPE_REFUND_EVENTS:
            WEBHOOK_SIGNALS[event_type].connect(
                receivers.on_stripe_refund_event, sender=Event, dispatch_uid=f"payments.{event_type}"
            )
        for event_type in receivers.HANDLED_STRIPE_EVENTS:
            WEBHOOK_SIGNALS[event_type].connect(
                receivers.on_stripe_payment_intent_event, sender=Event, dispatch_uid=f"payments.{event_type}"
            )
