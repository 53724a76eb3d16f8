// Answers the server has not acknowledged yet, kept on this device (localStorage) so that a
// failed save, a closed tab or a reload loses nothing. An entry holds the read alone (the
// form's answers and the viewer's marks) and the revision it was based on, keyed by attempt
// id and case position: no name, no case identity. Entries go once the server acknowledges
// them and when the attempt ends.
const PREFIX = "cxr-academy:unsaved:";

function key(attemptId, position) {
  return `${PREFIX}${attemptId}:${position}`;
}

// A browser that refuses storage (private mode, quota) still keeps the answer in memory on
// the page; only the copy that survives a reload is lost.
function storage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export function keep(attemptId, position, read) {
  try {
    storage()?.setItem(key(attemptId, position), JSON.stringify(read));
  } catch {
    // Quota or privacy settings: the page's own copy still guards leaving.
  }
}

export function kept(attemptId, position) {
  try {
    const text = storage()?.getItem(key(attemptId, position));
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

export function forget(attemptId, position) {
  storage()?.removeItem(key(attemptId, position));
}

// Every unacknowledged answer of an attempt: [{position, read}], by position.
export function keptOf(attemptId) {
  const store = storage();
  if (!store) return [];
  const prefix = `${PREFIX}${attemptId}:`;
  const found = [];
  for (let i = 0; i < store.length; i += 1) {
    const name = store.key(i);
    if (!name || !name.startsWith(prefix)) continue;
    const position = Number(name.slice(prefix.length));
    const read = kept(attemptId, position);
    if (Number.isInteger(position) && read) found.push({ position, read });
  }
  return found.sort((a, b) => a.position - b.position);
}

export function forgetAttempt(attemptId) {
  for (const { position } of keptOf(attemptId)) forget(attemptId, position);
}

// Send one kept answer to the server. Returns "saved" (acknowledged: forgotten here),
// "stale" (a newer answer was saved meanwhile: it wins, forgotten here), "ended" (the
// attempt is over: everything of it forgotten), "refused" (bad input: kept, retrying would
// not help) or "failed" (no connection or a server error: kept, to be tried again).
export async function send(url, token, attemptId, position, read) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(read),
    });
  } catch {
    return { outcome: "failed", body: {} };
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok) {
    return { outcome: "saved", body };
  }
  if (response.status === 409 && body.ended) {
    forgetAttempt(attemptId);
    return { outcome: "ended", body };
  }
  if (response.status === 409 && body.reason === "stale") {
    forget(attemptId, position);
    return { outcome: "stale", body };
  }
  // 5xx (the server or its database is down), 408 and 429: worth trying again later.
  if (response.status >= 500 || response.status === 408 || response.status === 429) {
    return { outcome: "failed", body, retryAfter: Number(response.headers.get("Retry-After")) || 0 };
  }
  return { outcome: "refused", body };
}
