"""Credit Key's hosted checkout: the native page, wrapped in what creditkey-js expects of it.

`checkout_url` is `<public url>/hosted/creditkey/modal/<id>` (or `/redirect/<id>` when the
merchant asked for `mode: redirect`). creditkey-js loads it in an iframe with `modal=true` added,
or, on phones, navigates to it with the first `modal` rewritten to `redirect`; both paths load.

In the iframe (`modal=true`) the page talks to the merchant's page with JSON-string
`postMessage`s, as the SDK's modal listens for them: `height` on every load, `complete` with the
final URL once the borrower is done (the SDK navigates there, or hands a completion callback
the URL's `id`), and `cancel` from the page's "back to the store" link (the SDK hides the
modal). Outside an iframe the same outcomes are plain navigations (303 to the return or cancel
URL). `%CKKEY%` in either URL is replaced with the order id, by plain string replacement.

A pended application (manual review) ends on a page saying so; Sandbank GETs the
`order_complete_url` when the review approves it (`callbacks`).
"""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from simulator.api import hosted  # the native page and form: one look for both dialects
from simulator.api.runtime import service_of
from simulator.dialects.creditkey.api import HOSTED
from simulator.domain.errors import SandbankError
from simulator.domain.models import Checkout

MODES = ("modal", "redirect")
_SCRIPT = """<script>
(function () {
  var framed = window.parent !== window;
  function tell(action, options) {
    if (!framed) { return false; }
    var message = {action: action, type: "modal"};
    if (options !== undefined) { message.options = options; }
    window.parent.postMessage(JSON.stringify(message), "*");
    return true;
  }
  tell("height", document.body.scrollHeight);
  var done = %(done)s;
  if (done && !tell("complete", done)) { window.location.replace(done); }
  var back = document.getElementById("ck-cancel");
  if (back) {
    back.addEventListener("click", function (e) { if (tell("cancel")) { e.preventDefault(); } });
  }
})();
</script>"""


def with_key(url: str, checkout: Checkout) -> str:
    return url.replace("%CKKEY%", checkout.id)


def _page(checkout: Checkout, buyer: str, *, message: str = "", done: str | None = None) -> str:
    page = hosted.render(checkout, buyer, message)
    back = html.escape(with_key(checkout.cancel_url, checkout))
    extra = ""
    if checkout.status == "completed" and done is None:
        extra += (
            "<p>Your application is under review. The store hears from Credit Key once it is "
            "decided.</p>"
        )
    if done is None:
        extra += f'<p><a id="ck-cancel" href="{back}">Back to the store</a></p>'
    script = _SCRIPT % {"done": json.dumps(done).replace("</", "<\\/")}
    return page.replace("</body>", f"{extra}{script}</body>")


def _outcome(request: Request, checkout: Checkout) -> str | None:
    """Where the borrower goes now: the return URL once approved, the cancel URL once
    declined, nowhere while a review is pending (None)."""
    if checkout.status == "completed":
        with service_of(request).scope_for("order", checkout.order_id or "") as ctx:
            order = service_of(request).get_order(ctx, checkout.order_id or "")
        if order.status == "pending_review":
            return None
        return with_key(checkout.return_url, checkout)
    return with_key(checkout.cancel_url, checkout)


def _not_found() -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>Credit Key</title><p>No such checkout.</p>", 404)


async def show(request: Request) -> Response:
    if request.path_params["mode"] not in MODES:
        return _not_found()
    try:
        checkout, buyer = hosted.load(request, str(request.path_params["id"]))
    except SandbankError:
        return _not_found()
    return HTMLResponse(_page(checkout, buyer))


async def submit(request: Request) -> Response:
    if request.path_params["mode"] not in MODES:
        return _not_found()
    try:
        done = await hosted.answer(request, str(request.path_params["id"]))
        if done.refused is not None:
            page = _page(done.checkout, done.buyer_name, message=done.message)
            return HTMLResponse(page, done.refused)
        target = _outcome(request, done.checkout)
    except SandbankError:
        return _not_found()
    if target is not None and request.query_params.get("modal") != "true":
        return RedirectResponse(target, status_code=303)
    return HTMLResponse(_page(done.checkout, done.buyer_name, done=target))


ROUTES = [
    Route(HOSTED + "/{mode}/{id}", show, methods=["GET"]),
    Route(HOSTED + "/{mode}/{id}", submit, methods=["POST"]),
]
