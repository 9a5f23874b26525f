"""A real SMTP server for the integration tests: aiosmtpd storing every message in a
Maildir, answering 550 5.1.1 for the recipients named with --reject (a hard bounce).

    python smtpd.py PORT MAILDIR [--reject a@x.example,b@y.example] [--auth USER:PASS]

With --auth it offers AUTH PLAIN/LOGIN without TLS (as a misconfigured server would)
and appends each login it receives to MAILDIR.auth, so a test can tell whether a
password crossed the wire.
"""
import asyncio
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult


class Handler(Mailbox):
    def __init__(self, maildir, reject):
        super().__init__(maildir)
        self.reject = reject

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"


def main():
    port, maildir = int(sys.argv[1]), sys.argv[2]
    reject = set()
    if "--reject" in sys.argv:
        reject = {a.strip().lower() for a in sys.argv[sys.argv.index("--reject") + 1].split(",")}
    kwargs = {}
    if "--auth" in sys.argv:
        user, password = sys.argv[sys.argv.index("--auth") + 1].split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode()
            with open(maildir + ".auth", "a") as f:
                f.write("%s %s\n" % (mechanism, login))
            ok = login == user and auth_data.password.decode() == password
            return AuthResult(success=ok)

        kwargs = {"authenticator": authenticator, "auth_require_tls": False}
    controller = Controller(Handler(maildir, reject), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
