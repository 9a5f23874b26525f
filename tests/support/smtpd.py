"""A real SMTP server for the integration tests: aiosmtpd storing every message in a
Maildir, answering 550 5.1.1 for the recipients named with --reject (a hard bounce).

    python smtpd.py PORT MAILDIR [--reject a@x.example,b@y.example]
"""
import asyncio
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


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
    controller = Controller(Handler(maildir, reject), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
