"""Two aiosmtpd servers for the SMTP TLS interop test: STARTTLS (required
before AUTH) and implicit TLS (SMTPS), both with AUTH PLAIN/LOGIN for one
user, each delivered message written to a spool directory with the
authenticated user recorded. aiosmtpd is a third-party SMTP server; this is
only its configuration.

usage: smtp_server.py CERT KEY SPOOL STARTTLS_PORT TLS_PORT USER PASSWORD
"""
import asyncio
import os
import warnings
import ssl
import sys
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

cert, key, spool, starttls_port, tls_port, user, password = sys.argv[1:8]
os.makedirs(spool, exist_ok=True)


class Spool:
    async def handle_DATA(self, server, session, envelope):
        data = session.auth_data
        who = data.login.decode() if session.authenticated and isinstance(data, LoginPassword) else "-"
        # STARTTLS sets session.ssl; implicit TLS wraps the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        path = os.path.join(spool, f"{uuid.uuid4()}.eml")
        with open(path, "wb") as f:
            f.write(f"X-Test-Auth-User: {who}\r\nX-Test-TLS: {tls}\r\n".encode())
            f.write(envelope.original_content)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
        and auth_data.password.decode() == password
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

starttls = Controller(Spool(), hostname="127.0.0.1", port=int(starttls_port), tls_context=ctx,
                      require_starttls=True, authenticator=authenticator, auth_required=True,
                      auth_require_tls=True)
# Implicit TLS: the whole connection is TLS, so aiosmtpd's "AUTH only
# after STARTTLS" check does not apply (it does not see the wrapper).
implicit = Controller(Spool(), hostname="127.0.0.1", port=int(tls_port), ssl_context=ctx,
                      authenticator=authenticator, auth_required=True, auth_require_tls=False)
starttls.start()
implicit.start()
print("ready", flush=True)
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    pass
