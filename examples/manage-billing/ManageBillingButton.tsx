// The "Manage billing" button for React apps: asks customer-portal for a Stripe
// billing-portal session and sends the user there, or shows why not. Back from Stripe
// Checkout (the page has ?session_id=), it first links the user to the session's
// customer, in case the webhook is still on its way.
import { useEffect, useState } from "react";

const PORTAL_ROUTE = "/api/v1/payments/stripe/customer-portal";
const CHECKOUT_SYNC_ROUTE = "/api/v1/payments/stripe/checkout-sync";

export interface ManageBillingButtonProps {
  /** Where customer-portal is served, e.g. "https://billing-api.example.com". */
  apiBase: string;
  /** The signed-in user's bearer token, fresh for each click. */
  getToken: () => string | Promise<string>;
  /** false uses the project's live Stripe key and customer. */
  testMode?: boolean;
  /** Where Stripe's "Return" link leads; this page by default. */
  returnUrl?: string;
}

/** FastAPI's error body: a message, or for a 422 a list of them. */
interface ErrorBody {
  detail?: string | { msg: string }[];
}

export function ManageBillingButton({ apiBase, getToken, testMode = true, returnUrl }: ManageBillingButtonProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  // "Back" from the portal may restore this page from the back-forward cache, still busy.
  useEffect(() => {
    const onPageShow = (event: PageTransitionEvent) => {
      if (event.persisted) setBusy(false);
    };
    window.addEventListener("pageshow", onPageShow);
    return () => window.removeEventListener("pageshow", onPageShow);
  }, []);

  // Back from Checkout: link the session's customer before the first click can need it,
  // then drop ?session_id= so it does not become the return_url.
  useEffect(() => {
    const params = new URLSearchParams(window.location.search);
    const sessionId = params.get("session_id");
    if (!sessionId) return;
    setBusy(true);
    (async () => {
      try {
        await syncCheckoutSession(apiBase, await getToken(), testMode, sessionId);
        params.delete("session_id");
        const query = params.toString();
        window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
      } catch (e) {
        setError(e instanceof Error ? e.message : "Something went wrong. Please try again.");
      } finally {
        setBusy(false);
      }
    })();
    // Once per page load: the session is in the address only then.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  async function openPortal() {
    setBusy(true);
    setError(null);
    try {
      window.location.assign(
        await createPortalSession(apiBase, await getToken(), testMode, returnUrl ?? window.location.href),
      );
      // Stay busy: the page is being replaced.
    } catch (e) {
      setError(e instanceof Error ? e.message : "Something went wrong. Please try again.");
      setBusy(false);
    }
  }

  return (
    <>
      <button type="button" onClick={openPortal} disabled={busy} aria-busy={busy}>
        {busy ? "Opening billing portal…" : "Manage billing"}
      </button>
      {error && <p role="alert">{error}</p>}
    </>
  );
}

/** Links the user to the customer of their Checkout Session; rejects as createPortalSession. */
export async function syncCheckoutSession(
  apiBase: string,
  token: string,
  testMode: boolean,
  sessionId: string,
): Promise<void> {
  const { response, body } = await post<{ linked?: unknown }>(CHECKOUT_SYNC_ROUTE, apiBase, token, testMode, {
    session_id: sessionId,
  });
  if (!response.ok || body?.linked !== true) {
    throw new Error(errorMessage(response, body));
  }
}

/** The answer's `detail`, fit for the user, or why there was none. */
function errorMessage(response: Response, body: ErrorBody | null): string {
  const detail = body?.detail;
  const message =
    typeof detail === "string"
      ? detail
      : Array.isArray(detail)
        ? detail.map((e) => e.msg).join("; ")
        : `The billing service answered ${response.status}. Please try again later.`;
  const retryAfter = response.headers.get("Retry-After");
  return retryAfter ? `${message} (try again in ${retryAfter} s)` : message;
}

/** Resolves to the portal URL; rejects with an Error whose message is fit for the user. */
export async function createPortalSession(
  apiBase: string,
  token: string,
  testMode: boolean,
  returnUrl: string,
): Promise<string> {
  const { response, body } = await post<{ portal_url?: unknown }>(PORTAL_ROUTE, apiBase, token, testMode, {
    return_url: returnUrl,
  });
  if (response.ok && typeof body?.portal_url === "string") {
    return body.portal_url;
  }
  throw new Error(errorMessage(response, body));
}

/** POSTs `payload` as JSON with the user's token; the response and its JSON body, if any. */
async function post<T>(
  route: string,
  apiBase: string,
  token: string,
  testMode: boolean,
  payload: unknown,
): Promise<{ response: Response; body: (ErrorBody & T) | null }> {
  const url = new URL(route, apiBase);
  url.searchParams.set("test_mode", String(testMode));
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
  } catch {
    // The browser hides why (offline, DNS, or a CORS refusal); all the user can do is retry.
    throw new Error("Could not reach the billing service. Please try again.");
  }
  const body = await response.json().catch(() => null);
  return { response, body };
}
