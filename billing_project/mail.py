"""Django's SMTP backend, recording what the server refused.

smtplib's sendmail raises when every recipient is refused but only returns the refused ones when
some were accepted; Django's backend drops that answer. Sending a document must know both (a
refusal is recorded on the message's outbox row), so this backend keeps them in `refused`
({address: (code, message)}) for the sender to read after `send_messages`.
"""

from __future__ import annotations

from typing import Any

from django.core.mail.backends.smtp import EmailBackend


class RecordingSMTPBackend(EmailBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: dict[str, tuple[int, bytes]] = {}

    def open(self) -> bool | None:
        opened = super().open()
        connection = self.connection
        if connection is not None and not getattr(connection, "_tollgate_recording", False):
            sendmail = connection.sendmail

            def recording_sendmail(*args: Any, **kwargs: Any) -> dict[str, tuple[int, bytes]]:
                refused = sendmail(*args, **kwargs)
                self.refused.update(refused or {})
                return refused

            connection.sendmail = recording_sendmail  # type: ignore[method-assign]
            connection._tollgate_recording = True  # type: ignore[attr-defined]
        return opened
