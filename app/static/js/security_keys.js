// Security keys (WebAuthn): adding one on the account page, and the sign-in's second step.
//
// A form marked data-security-key asks the portal for the ceremony's options (JSON, with a
// one-time challenge), lets the browser reach the key (navigator.credentials.create or
// .get), puts the key's answer, as JSON, in the form's hidden field and posts the form.
//
// The browser's API takes and gives binary values (ArrayBuffers) where the portal's JSON has
// base64url strings. The few lines converting them are written here rather than taken from
// @simplewebauthn/browser: they are all this page needs of it, and the browsers' own
// converters (PublicKeyCredential.parseCreationOptionsFromJSON, credential.toJSON) are not
// yet in every browser the clinics use.

import { _ } from "./i18n.js";
const token = document.querySelector('meta[name="csrf-token"]').content;

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withBinaryIds(descriptors) {
  return (descriptors || []).map((d) => ({ ...d, id: fromBase64url(d.id) }));
}

function creationOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withBinaryIds(json.excludeCredentials),
  };
}

function requestOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    allowCredentials: withBinaryIds(json.allowCredentials),
  };
}

function credentialJSON(credential) {
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

async function fetchOptions(url) {
  const reply = await fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": token, Accept: "application/json" },
    credentials: "same-origin",
  });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    throw new Error(body.message || _("The portal refused the request. Reload the page and try again."));
  }
  return body;
}

function sentenceFor(error) {
  switch (error.name) {
    case "NotAllowedError":
      return _("The security key did not answer: the request was cancelled or timed out. Try again.");
    case "InvalidStateError":
      return _("This security key is already registered to your account.");
    case "SecurityError":
      return _("This page's address is not the portal's public address, so a security key cannot be used here.");
    case "NotSupportedError":
      return _("This browser or key cannot make the kind of key this portal accepts.");
    default:
      return error.message || _("The security key could not be used. Try again.");
  }
}

for (const form of document.querySelectorAll("form[data-security-key]")) {
  const answer = form.querySelector("[data-security-key-response]");
  const status = form.querySelector("[data-security-key-status]");
  const say = (sentence) => {
    status.textContent = sentence;
    status.hidden = false;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(_("This browser cannot use security keys. Use your authenticator app instead."));
      return;
    }
    status.hidden = true;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const options = await fetchOptions(form.dataset.optionsUrl);
      const credential = form.dataset.securityKey === "register"
        ? await navigator.credentials.create({ publicKey: creationOptions(options) })
        : await navigator.credentials.get({ publicKey: requestOptions(options) });
      answer.value = JSON.stringify(credentialJSON(credential));
      form.submit(); // not requestSubmit: this handler must not run again
    } catch (error) {
      say(sentenceFor(error));
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}
