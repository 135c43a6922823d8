"""The words of the documents' e-mails, per organization locale (Lago's document_locale). A
locale missing a word falls back to English; customers.models.DOCUMENT_LOCALES lists those an
organization may choose."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "invoice_subject": "Your invoice from {organization} #{number}",
        "invoice_intro": "Here is your invoice {number} from {organization}.",
        "credit_note_subject": "Your credit note from {organization} #{number}",
        "credit_note_intro": "Here is your credit note {number} from {organization}, for invoice {invoice}.",
        "payment_receipt_subject": "Your receipt from {organization} #{number}",
        "payment_receipt_intro": "Thank you: we received your payment. Here is your receipt {number}.",
        "payment_request_subject": "Your overdue invoices from {organization}",
        "payment_request_intro": "The invoices below from {organization} are past due. "
        "Please pay {amount} at your earliest convenience.",
        "number": "Number",
        "issuing_date": "Issued on",
        "due_date": "Due on",
        "total": "Total",
        "amount_due": "Amount due",
        "amount_paid": "Amount paid",
        "paid_on": "Paid on",
        "invoice": "Invoice",
        "download": "Download the PDF",
        "pay": "Pay now",
        "attached": "The PDF is attached to this e-mail.",
        "questions": "Questions? Reply to this e-mail or write to {email}.",
    },
    "fr": {
        "invoice_subject": "Votre facture de {organization} n° {number}",
        "invoice_intro": "Voici votre facture {number} de {organization}.",
        "credit_note_subject": "Votre avoir de {organization} n° {number}",
        "credit_note_intro": "Voici votre avoir {number} de {organization}, sur la facture {invoice}.",
        "payment_receipt_subject": "Votre reçu de {organization} n° {number}",
        "payment_receipt_intro": "Merci : nous avons reçu votre paiement. Voici votre reçu {number}.",
        "payment_request_subject": "Vos factures échues de {organization}",
        "payment_request_intro": "Les factures ci-dessous de {organization} sont échues. "
        "Merci de régler {amount} dès que possible.",
        "number": "Numéro",
        "issuing_date": "Émise le",
        "due_date": "Échéance",
        "total": "Total",
        "amount_due": "Montant dû",
        "amount_paid": "Montant payé",
        "paid_on": "Payé le",
        "invoice": "Facture",
        "download": "Télécharger le PDF",
        "pay": "Payer maintenant",
        "attached": "Le PDF est joint à cet e-mail.",
        "questions": "Une question ? Répondez à cet e-mail ou écrivez à {email}.",
    },
}


def words(locale: str) -> dict[str, str]:
    """Every word in `locale`, English where it has none."""
    return {**WORDS["en"], **WORDS.get(locale, {})}
