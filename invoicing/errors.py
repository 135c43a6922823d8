"""Domain errors of the invoicing app, in Lago's vocabulary. Services raise them; the API turns
them into Lago's error shapes and the admin into messages."""

from __future__ import annotations


class InvoicingError(Exception):
    """A refused change. `code` is Lago's code ("validation_errors" with field `details`, or a
    business rule such as "not_allowed"/"is_not_draft"); `status` is the HTTP status to answer."""

    status = 422

    def __init__(
        self, details: dict[str, list[str]] | None = None, code: str = "validation_errors", status: int | None = None
    ) -> None:
        self.details = details
        self.code = code
        if status is not None:
            self.status = status
        super().__init__(f"{code}: {details}" if details else code)

    @classmethod
    def field(cls, field: str, code: str) -> InvoicingError:
        return cls({field: [code]})


class NotFoundError(InvoicingError):
    """Lago answers 404 `<resource>_not_found`."""

    status = 404

    def __init__(self, resource: str) -> None:
        super().__init__(None, f"{resource}_not_found")
        self.resource = resource


class NotAllowedError(InvoicingError):
    """Lago's 405 `{"status": 405, "error": "Method Not Allowed", "code": "<reason>"}`."""

    status = 405

    def __init__(self, code: str) -> None:
        super().__init__(None, code)
