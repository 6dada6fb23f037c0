#!/usr/bin/env python3
"""A stand-in for Stripe's billing-portal API, for local runs without a Stripe account.

POST /v1/billing_portal/sessions answers like Stripe (form-encoded in, JSON out, errors
in Stripe's shape); the session URL points back here, at a page that links to the
return_url and names the flow asked for. GET /v1/subscriptions/{id} knows the
subscriptions in SUBSCRIPTIONS below: the demo customer's (cus_DemoCustomer, whom
scripts/dev links to its demo user, and whose subscription README's deep-link examples
use) and another customer's; any other ID does not exist.
GET /v1/checkout/sessions/cs_test_demo... answers a complete session of demo-user with
the demo customer (cs_test_open... an open one); other IDs do not exist.
/v1/webhook_endpoints lists, creates (answering a new whsec_ secret, once) and updates
endpoints, kept in memory. Standard library only. Usage: fake_stripe.py [--port 12111]
"""
import argparse
import html
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

# Subscription ID -> the customer it belongs to. README.md lists these: keep them in step.
SUBSCRIPTIONS = {
    "sub_1MowQVLkdIwHu7ixeRlqHVzs": "cus_DemoCustomer",
    "sub_1MowQVLkdIwHu7ixOtherCus": "cus_OtherCustomer",
}


ENDPOINTS = {}


class FakeStripe(BaseHTTPRequestHandler):
    server_version = "fake-stripe/1"

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Request-Id", "req_fake_" + secrets.token_hex(6))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, kind, code, message, param=None):
        error = {"type": kind, "code": code, "message": message}
        if param:
            error["param"] = param
        self._json(status, {"error": error})

    def _webhook_endpoint(self, path, form, events):
        if path == "/v1/webhook_endpoints":
            endpoint_id = "we_" + secrets.token_hex(8)
            ENDPOINTS[endpoint_id] = {"id": endpoint_id, "object": "webhook_endpoint", "url": form.get("url"),
                                      "api_version": form.get("api_version"), "status": "enabled"}
        else:
            endpoint_id = path.removeprefix("/v1/webhook_endpoints/")
            if endpoint_id not in ENDPOINTS:
                return self._error(404, "invalid_request_error", "resource_missing",
                                   f"No such webhook endpoint: '{endpoint_id}'", "id")
        ENDPOINTS[endpoint_id]["enabled_events"] = events
        answer = dict(ENDPOINTS[endpoint_id])
        if path == "/v1/webhook_endpoints":
            answer["secret"] = "whsec_" + secrets.token_hex(16)
        return self._json(200, answer)

    def do_POST(self):
        path = urlparse(self.path).path
        if path != "/v1/billing_portal/sessions" and not path.startswith("/v1/webhook_endpoints"):
            return self._error(404, "invalid_request_error", "resource_missing", "Unrecognized request URL")
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            return self._error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided")
        length = int(self.headers.get("Content-Length") or 0)
        pairs = parse_qs(self.rfile.read(length).decode())
        form = {k: v[-1] for k, v in pairs.items()}
        if path.startswith("/v1/webhook_endpoints"):
            events = [v[-1] for k, v in sorted(pairs.items()) if k.startswith("enabled_events[")]
            return self._webhook_endpoint(path, form, events)
        customer = form.get("customer", "")
        if not customer.startswith("cus_"):
            return self._error(400, "invalid_request_error", "resource_missing",
                               f"No such customer: '{customer}'", "customer")
        session = "bps_" + secrets.token_hex(8)
        host, port = self.server.server_address[:2]
        query = {"return_url": form.get("return_url", "")}
        if form.get("flow_data[type]"):
            query["flow"] = form["flow_data[type]"]
        url = f"http://{host}:{port}/p/session/{session}?" + urlencode(query)
        self._json(200, {
            "id": session, "object": "billing_portal.session", "customer": customer,
            "livemode": key.startswith(("sk_live_", "rk_live_")), "return_url": form.get("return_url"),
            "url": url,
        })

    def do_GET(self):
        parsed = urlparse(self.path)
        if parsed.path == "/v1/webhook_endpoints":
            return self._json(200, {"object": "list", "data": list(ENDPOINTS.values()), "has_more": False})
        if parsed.path.startswith("/v1/checkout/sessions/"):
            session = parsed.path.removeprefix("/v1/checkout/sessions/")
            if not session.startswith(("cs_test_demo", "cs_test_open")):
                return self._error(404, "invalid_request_error", "resource_missing",
                                   f"No such checkout.session: '{session}'", "session")
            complete = session.startswith("cs_test_demo")
            return self._json(200, {"id": session, "object": "checkout.session", "created": int(time.time()) - 30,
                                    "client_reference_id": "demo-user", "metadata": {},
                                    "customer": "cus_DemoCustomer" if complete else None,
                                    "status": "complete" if complete else "open", "livemode": False})
        if parsed.path.startswith("/v1/subscriptions/"):
            sub = parsed.path.removeprefix("/v1/subscriptions/")
            if sub not in SUBSCRIPTIONS:
                return self._error(404, "invalid_request_error", "resource_missing",
                                   f"No such subscription: '{sub}'", "id")
            return self._json(200, {"id": sub, "object": "subscription", "customer": SUBSCRIPTIONS[sub],
                                    "status": "active"})
        if not parsed.path.startswith("/p/session/"):
            return self._error(404, "invalid_request_error", "resource_missing", "Unrecognized request URL")
        query = parse_qs(parsed.query)
        back = html.escape(query.get("return_url", ["/"])[-1], quote=True)
        flow = html.escape(query.get("flow", [""])[-1] or "home page")
        page = (f"<!doctype html><title>Billing portal (fake)</title><h1>Billing portal</h1>"
                f"<p>This is the fake Stripe portal, opened on: <span id=flow>{flow}</span>.</p>"
                f"<a id=return href=\"{back}\">Return to the app</a>")
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), FakeStripe).serve_forever()
