// The page's side of htj2k_worker.js: one worker for every pane, a promise per stream.
// decode16(buffer), for an HTJ2K or a JPEG-LS stream, resolves to { width, height, data:
// Uint16Array } (stored + stored_offset, bit for bit for the exact stream) and transfers
// the buffer away.

let worker = null;
let nextId = 0;
const pending = new Map();

function start() {
  worker = new Worker(new URL("./htj2k_worker.js", import.meta.url));
  worker.onmessage = ({ data }) => {
    const job = pending.get(data.id);
    if (!job) return;
    pending.delete(data.id);
    if (data.error) job.reject(new Error(`The image data could not be decoded: ${data.error}`));
    else job.resolve({ width: data.width, height: data.height, data: data.data });
  };
  worker.onerror = (event) => {
    // The worker itself failed (its script or the WebAssembly could not load): every
    // waiting decode fails, and the next one starts a fresh worker.
    event.preventDefault();
    const message = event.message || "the decoder could not start";
    for (const job of pending.values()) job.reject(new Error(`The image decoder failed: ${message}`));
    pending.clear();
    worker.terminate();
    worker = null;
  };
}

/** Start the worker (it fetches and compiles the decoder at once), so that the decoder
 *  downloads beside the first stream instead of after it. */
export function warmUp() {
  if (!worker) start();
}

/** The stream on its way is `type` (its response's media type): a JPEG-LS one has the worker
 *  load its decoder now, beside the download, instead of after it. */
export function prepareFor(type) {
  if (!type.startsWith("image/jls")) return;
  if (!worker) start();
  worker.postMessage({ prepare: "jpegls" });
}

export function decode16(buffer) {
  if (!worker) start();
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, bytes: buffer }, [buffer]);
  });
}
