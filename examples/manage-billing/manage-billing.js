// The "Manage billing" button: asks customer-portal for a Stripe billing-portal session
// and sends the user there. Back from Stripe Checkout (the page has ?session_id=), it
// first links the user to the session's customer, in case the webhook is still on its
// way. Plain ES module, no build step.

const PORTAL_ROUTE = "/api/v1/payments/stripe/customer-portal";
const CHECKOUT_SYNC_ROUTE = "/api/v1/payments/stripe/checkout-sync";

/** An answer the user should read: the service's `detail`, or why there was none. */
export class BillingPortalError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "BillingPortalError";
    this.status = status;
  }
}

/**
 * Asks the service for a portal session and resolves to its URL.
 * Rejects with a BillingPortalError whose message is fit to show to the user.
 */
export async function createPortalSession({ apiBase, token, testMode = true, returnUrl = window.location.href }) {
  const { response, body } = await post(PORTAL_ROUTE, { apiBase, token, testMode }, { return_url: returnUrl });
  if (response.ok && typeof body?.portal_url === "string") {
    return body.portal_url;
  }
  throw new BillingPortalError(describe(response, body), response.status);
}

/**
 * Links the user to the customer of the Checkout Session they came back from.
 * Rejects with a BillingPortalError, as createPortalSession does.
 */
export async function syncCheckoutSession({ apiBase, token, sessionId, testMode = true }) {
  const { response, body } = await post(CHECKOUT_SYNC_ROUTE, { apiBase, token, testMode }, { session_id: sessionId });
  if (!response.ok || body?.linked !== true) {
    throw new BillingPortalError(describe(response, body), response.status);
  }
}

// POSTs `payload` as JSON with the user's token; the response and its JSON body, if any.
async function post(route, { apiBase, token, testMode }, payload) {
  const url = new URL(route, apiBase);
  url.searchParams.set("test_mode", String(testMode));
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
  } catch {
    // The browser hides why (offline, DNS, or a CORS refusal); all the user can do is retry.
    throw new BillingPortalError("Could not reach the billing service. Please try again.", 0);
  }
  const body = await response.json().catch(() => null);
  return { response, body };
}

// FastAPI's `detail` is a string, or for a 422 a list of {msg}; a proxy in between may
// answer something that is not JSON at all.
function describe(response, body) {
  const detail = body?.detail;
  let message;
  if (typeof detail === "string") {
    message = detail;
  } else if (Array.isArray(detail)) {
    message = detail.map((error) => error.msg).join("; ");
  } else {
    message = `The billing service answered ${response.status}. Please try again later.`;
  }
  const retryAfter = response.headers.get("Retry-After");
  return retryAfter ? `${message} (try again in ${retryAfter} s)` : message;
}

/**
 * Wires a button: a click shows a busy state, then either leaves for the portal or shows
 * the reason in `status` (an element with role="alert").
 * `getToken` returns the user's bearer token (or a promise of it), fresh for each click.
 */
export function mountManageBillingButton(button, status, { apiBase, getToken, testMode = true }) {
  const label = button.textContent;
  const idle = () => {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = "Opening billing portal…";
    status.hidden = true;
    try {
      await checkout;
      const token = await getToken();
      window.location.assign(await createPortalSession({ apiBase, token, testMode }));
      // Stay busy: the page is being replaced.
    } catch (error) {
      status.textContent = error instanceof BillingPortalError ? error.message : "Something went wrong. Please try again.";
      status.hidden = false;
      idle();
    }
  });
  // "Back" from the portal may restore this page from the back-forward cache, still busy.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) idle();
  });
  // Back from Checkout: link the session's customer before the first click can need it.
  const checkout = syncFromAddress({ apiBase, getToken, testMode }).catch((error) => {
    status.textContent = error instanceof BillingPortalError ? error.message : "Something went wrong. Please try again.";
    status.hidden = false;
  });
  button.textContent = "Finishing your checkout…";
  checkout.finally(idle);
}

/** Syncs the address's ?session_id=, if any, then drops it so it is not the return_url. */
async function syncFromAddress({ apiBase, getToken, testMode }) {
  const params = new URLSearchParams(window.location.search);
  const sessionId = params.get("session_id");
  if (!sessionId) return;
  await syncCheckoutSession({ apiBase, token: await getToken(), sessionId, testMode });
  params.delete("session_id");
  const query = params.toString();
  window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
}
