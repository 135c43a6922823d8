from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer portal: a signed, expiring page where one customer sees its documents, usage
    and wallets, edits its billing details and pays. Rightmost beside webhooks: no app imports it."""

    name = "portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The e-mails' "pay" links (invoicing.mail.links, payments.payment_requests) become the
        # customer's portal page, where Pay now opens Stripe Checkout.
        from invoicing.mail.links import invoice_pay_link_register
        from payments.payment_requests import payment_request_pay_link_register

        from .links import invoice_pay_link, payment_request_pay_link

        invoice_pay_link_register(invoice_pay_link)
        payment_request_pay_link_register(payment_request_pay_link)
