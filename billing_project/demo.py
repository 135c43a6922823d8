"""What `make demo` tells a person at the end: each app's demo step adds the facts it made (the
admin password, the API key) to one summary, printed as the last block before the server starts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DemoSummary:
    base_url: str = "http://127.0.0.1:8000"
    admin_username: str = ""
    # Set only on the run that created them: neither is stored in clear.
    admin_password: str = ""
    api_key: str = ""
    facts: list[str] = field(default_factory=list)

    def closing_block(self) -> str:
        rule = "=" * 78
        lines = [rule, "Tollgate demo is ready", ""]
        lines.append(f"  Admin (finance console)  {self.base_url}/admin/")
        if self.admin_password:
            lines.append(f"    username {self.admin_username}   password {self.admin_password}   (shown this once)")
        else:
            lines.append(f"    username {self.admin_username}   (password shown on the first run only)")
        lines.append(f"    lost it? .venv/bin/python manage.py changepassword {self.admin_username}")
        lines.append(f"  API docs (Swagger UI)    {self.base_url}/api/v1/docs/")
        if self.api_key:
            lines.append(f"  API key                  {self.api_key}   (shown this once)")
            key = self.api_key
        else:
            lines.append("  API key                  shown on the first run only; make another with")
            lines.append("                           .venv/bin/python manage.py create_api_key --name me")
            key = "<your API key>"
        lines.append("  Try it:")
        lines.append(f'    curl -H "Authorization: Bearer {key}" {self.base_url}/api/v1/customers')
        if self.facts:
            lines.append("")
            lines.append("  In the demo data:")
            lines.extend(f"    - {fact}" for fact in self.facts)
        lines += ["", "Stop the server with CONTROL-C; `make demo` again keeps everything.", rule]
        return "\n".join(lines)
