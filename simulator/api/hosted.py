"""The hosted checkout page: plain HTML a person can use to accept (with terms) or decline.

`render`, `load` and `answer` are public because Credit Key's hosted page
(`simulator/dialects/creditkey/hosted.py`) is this page in another frame: one look and one
form handling for both dialects, only the navigation after the answer differs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from simulator.api.runtime import service_of
from simulator.asgi import read_body
from simulator.domain.decisions import TERMS
from simulator.domain.errors import SandbankError
from simulator.domain.models import Checkout
from simulator.domain.money import Money

TERM_LABELS = {
    "net30": "Net 30 — pay the full amount in 30 days",
    "net60": "Net 60 — pay the full amount in 60 days",
    "installments_3": "3 monthly installments",
    "installments_6": "6 monthly installments",
    "installments_12": "12 monthly installments",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbank checkout {id}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}
.banner{{background:#fff3cd;padding:.5rem 1rem;border-radius:4px}}
table{{border-collapse:collapse;width:100%}}td{{padding:.25rem 0}}
button{{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}}</style></head>
<body><p class="banner">Sandbank sandbox — no real credit is extended.</p>
<h1>Pay on terms</h1>{content}</body></html>"""


def redirect_target(url: str, checkout: Checkout) -> str:
    """`{CHECKOUT_ID}` (or Credit Key's `%CKKEY%`) is replaced; otherwise `checkout_id` is added."""
    for marker in ("{CHECKOUT_ID}", "%CKKEY%"):
        if marker in url:
            return url.replace(marker, checkout.id)
    parts = urlsplit(url)
    extra = urlencode({"checkout_id": checkout.id, "status": checkout.status})
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def render(checkout: Checkout, buyer_name: str, message: str = "") -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(i.name)} &times; {i.quantity}</td><td>"
        f"{e(Money(i.unit_amount * i.quantity, checkout.currency).format())}</td></tr>"
        for i in checkout.line_items
    )
    summary = (
        f"<p><strong>{e(buyer_name)}</strong> — order {e(checkout.merchant_order_id or '')}</p>"
        f"<table>{rows}<tr><td><strong>Total</strong></td><td><strong>"
        f"{e(Money(checkout.amount, checkout.currency).format())}</strong></td></tr></table>"
    )
    if checkout.status != "open":
        status = f"<p>This checkout is <strong>{e(checkout.status)}</strong>.</p>"
        if checkout.order_id:
            status += f"<p>Order <code>{e(checkout.order_id)}</code></p>"
        return _PAGE.format(id=e(checkout.id), content=summary + status)
    options = "".join(
        f'<p><label><input type="radio" name="terms" value="{t}"'
        f"{' checked' if t == 'net30' else ''}> {e(TERM_LABELS[t])}</label></p>"
        for t in TERMS
    )
    form = (
        f"{f'<p>{e(message)}</p>' if message else ''}"
        f'<form method="post"><fieldset><legend>Choose your terms</legend>{options}</fieldset>'
        '<p><button name="action" value="approve">Accept and place order</button>'
        '<button name="action" value="decline">Decline</button></p></form>'
        f"<p><small>Offer expires {checkout.expires_at:%Y-%m-%d %H:%M} UTC</small></p>"
    )
    return _PAGE.format(id=e(checkout.id), content=summary + form)


def _not_found(checkout_id: str) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(id=html.escape(checkout_id), content="<p>No such checkout.</p>"), 404
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """What the buyer's form did to a checkout."""

    checkout: Checkout  # as it is now
    buyer_name: str
    refused: int | None = None  # nothing done: 409 (no longer open) or 422 (no choice made)
    message: str = ""  # for the buyer, when the form chose nothing


def load(request: Request, checkout_id: str) -> tuple[Checkout, str]:
    """The checkout and its buyer's name; SandbankError when there is no such checkout."""
    service = service_of(request)
    with service.scope_for("checkout", checkout_id) as ctx:
        checkout = service.get_checkout(ctx, checkout_id)
        return checkout, service.get_buyer(ctx, checkout.buyer_id).legal_name


async def answer(request: Request, checkout_id: str) -> Answer:
    """The page's form applied: the checkout approved on the chosen terms, or declined, in its
    account's transaction. SandbankError when there is no such checkout."""
    service = service_of(request)
    form = parse_qs((await read_body(request.scope, request.receive)).decode("utf-8", "replace"))
    action = (form.get("action") or [""])[0]
    terms = (form.get("terms") or ["net30"])[0]
    with service.scope_for("checkout", checkout_id) as ctx:
        checkout = service.get_checkout(ctx, checkout_id)
        buyer_name = service.get_buyer(ctx, checkout.buyer_id).legal_name
        if checkout.status != "open":
            return Answer(checkout, buyer_name, 409)
        if action == "approve" and terms in TERMS:
            checkout = service.approve_checkout(ctx, checkout_id, terms)
        elif action == "decline":
            checkout = service.decline_checkout(ctx, checkout_id)
        else:
            return Answer(checkout, buyer_name, 422, "Choose terms and a button.")
    return Answer(checkout, buyer_name)


async def show(request: Request) -> Response:
    checkout_id = str(request.path_params["id"])
    try:
        checkout, buyer_name = load(request, checkout_id)
    except SandbankError:
        return _not_found(checkout_id)
    return HTMLResponse(render(checkout, buyer_name))


async def submit(request: Request) -> Response:
    checkout_id = str(request.path_params["id"])
    try:
        done = await answer(request, checkout_id)
    except SandbankError:
        return _not_found(checkout_id)
    checkout = done.checkout
    if done.refused is not None:
        return HTMLResponse(render(checkout, done.buyer_name, done.message), done.refused)
    target = checkout.return_url if checkout.status == "completed" else checkout.cancel_url
    return RedirectResponse(redirect_target(target, checkout), status_code=303)
