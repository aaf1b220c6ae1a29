"""A real SMTP server on loopback (aiosmtpd, in a thread of the test process) that keeps what
it receives, can demand a password, and can refuse the next deliveries."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from notifier.testing.stack import free_port


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    at: float  # when it was accepted (time.time())

    def part(self, content_type: str) -> str:
        """The decoded text of the part with this content type."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return str(part.get_content())
        raise AssertionError(f"no {content_type} part in {self.message.get_content_type()}")


class SmtpServer:
    """`url` is the EMAIL_URL that reaches it, with the user and password it demands."""

    def __init__(self, *, user: str = "", password: str = "") -> None:
        self.user, self.password = user, password
        self.port = free_port()
        self.received: list[Received] = []
        self.refusals = 0  # the next deliveries refused with a 451, one each
        self.refused = 0
        self.logins: list[str] = []
        self.delay = 0.0  # seconds each delivery waits before it is answered (a slow server)
        self._lock = threading.Lock()
        options: dict[str, Any] = {}
        if password:
            # Plain AUTH on loopback: what matters is that the client logs in, not TLS.
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)

    @property
    def url(self) -> str:
        credentials = f"{self.user}:{self.password}@" if self.password else ""
        return f"smtp://{credentials}127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        # aiosmtpd warns of its own deprecated attribute at every login it accepts.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (a connection is then refused); again: nothing."""
        if self._controller._thread is not None:
            self._controller.stop()

    def refuse_next(self, n: int) -> None:
        with self._lock:
            self.refusals = n

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (
            data.login.decode(),
            data.password.decode(),
        ) == (self.user, self.password)
        if ok:
            self.logins.append(self.user)
        return AuthResult(success=ok)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if self.refusals:
                self.refusals -= 1
                self.refused += 1
                return "451 4.3.0 Mail server busy, try again later"
            content = envelope.original_content or b""
            message = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, time.time())
            )
        return "250 OK"
