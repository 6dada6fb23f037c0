// The "Manage billing" button for React apps: asks customer-portal for a Stripe
// billing-portal session and sends the user there, or shows why not.
import { useEffect, useState } from "react";

const PORTAL_ROUTE = "/api/v1/payments/stripe/customer-portal";

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

/** Resolves to the portal URL; rejects with an Error whose message is fit for the user. */
export async function createPortalSession(
  apiBase: string,
  token: string,
  testMode: boolean,
  returnUrl: string,
): Promise<string> {
  const url = new URL(PORTAL_ROUTE, apiBase);
  url.searchParams.set("test_mode", String(testMode));
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ return_url: returnUrl }),
    });
  } catch {
    // The browser hides why (offline, DNS, or a CORS refusal); all the user can do is retry.
    throw new Error("Could not reach the billing service. Please try again.");
  }
  const body: (ErrorBody & { portal_url?: unknown }) | null = await response.json().catch(() => null);
  if (response.ok && typeof body?.portal_url === "string") {
    return body.portal_url;
  }
  const detail = body?.detail;
  const message =
    typeof detail === "string"
      ? detail
      : Array.isArray(detail)
        ? detail.map((e) => e.msg).join("; ")
        : `The billing service answered ${response.status}. Please try again later.`;
  const retryAfter = response.headers.get("Retry-After");
  throw new Error(retryAfter ? `${message} (try again in ${retryAfter} s)` : message);
}
