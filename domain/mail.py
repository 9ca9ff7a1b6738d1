"""Outgoing email through SMTP (aiosmtplib): the one place that talks to the mail server."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from config.settings import SmtpSettings


async def send_mail(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Send ``message`` (its From defaults to the configured sender); raises when the server refuses it."""
    if "From" not in message:
        message["From"] = smtp.sender
    await aiosmtplib.send(
        message,
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        use_tls=smtp.use_tls,
        start_tls=smtp.starttls,
        timeout=smtp.timeout,
    )
