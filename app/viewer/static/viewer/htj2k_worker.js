// Decodes HTJ2K codestreams (FORMAT.md: approx16.j2c, exact16.j2c) off the page's thread,
// with the vendored OpenJPH WebAssembly build, so reading, zoom and marks never wait for it.
// A classic worker: the Emscripten build is a classic script (importScripts), not a module.
//
// Message in:  { id, bytes: ArrayBuffer }                      (the buffer is transferred)
// Message out: { id, width, height, data: Uint16Array } | { id, error: string }
"use strict";

const LIBRARY = new URL("../../../static/vendor/openjph/openjphjs.js", self.location.href).href;
importScripts(LIBRARY);
// The .wasm file sits beside the library, not beside this worker.
const codec = Module({ locateFile: (path) => new URL(path, LIBRARY).href }); // eslint-disable-line no-undef

function decode(openjph, bytes) {
  const decoder = new openjph.HTJ2KDecoder();
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (info.componentCount !== 1 || info.bitsPerSample > 16 || info.isSigned) {
      throw new Error("The image data is not 16-bit unsigned greyscale.");
    }
    const count = info.width * info.height;
    const decoded = decoder.getDecodedBuffer(); // a view into WebAssembly memory: copy it
    const data = new Uint16Array(count);
    new Uint8Array(data.buffer).set(decoded.subarray(0, count * 2));
    return { width: info.width, height: info.height, data };
  } finally {
    decoder.delete();
  }
}

self.onmessage = async (event) => {
  const { id, bytes } = event.data;
  try {
    const image = decode(await codec, new Uint8Array(bytes));
    self.postMessage({ id, ...image }, [image.data.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message ? error.message : error) });
  }
};
