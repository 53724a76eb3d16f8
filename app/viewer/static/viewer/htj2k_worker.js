// Decodes the 16-bit display data off the page's thread (FORMAT.md): HTJ2K codestreams
// (approx16.j2c, and the exact16.j2c of images stored before JPEG-LS) with the vendored
// OpenJPH WebAssembly build, JPEG-LS (exact16.jls) with the vendored CharLS one, so
// reading, zoom and marks never wait for it. The stream's first bytes say which it is.
// A classic worker: the Emscripten builds are classic scripts (importScripts), not modules.
//
// Message in:  { id, bytes: ArrayBuffer }                      (the buffer is transferred)
//              | { prepare: "jpegls" }  (a JPEG-LS stream is on its way: load its decoder)
// Message out: { id, width, height, data: Uint16Array } | { id, error: string }
"use strict";

const VENDOR = new URL("../../../static/vendor/", self.location.href);
const OPENJPH = new URL("openjph/openjphjs.js", VENDOR).href;
const CHARLS = new URL("charls/charlswasm_decode.js", VENDOR).href;

// Each .wasm file sits beside its library, not beside this worker.
const locateBeside = (library) => ({ locateFile: (path) => new URL(path, library).href });

importScripts(OPENJPH); // the approximate stage (HTJ2K) is always the first stream
const openjphCodec = Module(locateBeside(OPENJPH)); // eslint-disable-line no-undef
// Loaded when the first JPEG-LS stream is on its way (or, failing that, has come): images
// stored before JPEG-LS never fetch it, and the earlier stages never share the link with it.
let charlsCodec = null;

function charls() {
  if (!charlsCodec) {
    importScripts(CHARLS);
    charlsCodec = CharLSWASM(locateBeside(CHARLS)); // eslint-disable-line no-undef
    charlsCodec.catch(() => {}); // a failed load is reported by the decode that awaits it
  }
  return charlsCodec;
}

// JPEG-LS starts with the JPEG start-of-image marker; an HTJ2K codestream with ff 4f.
function isJpegLs(bytes) {
  return bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xd8;
}

function samples16(info, decoded) {
  if (info.componentCount !== 1 || info.bitsPerSample > 16 || info.isSigned) {
    throw new Error("The image data is not 16-bit unsigned greyscale.");
  }
  const count = info.width * info.height;
  const data = new Uint16Array(count);
  // `decoded` is a view into WebAssembly memory: copy it out before the decoder is freed.
  if (info.bitsPerSample > 8) new Uint8Array(data.buffer).set(decoded.subarray(0, count * 2));
  else data.set(decoded.subarray(0, count));
  return { width: info.width, height: info.height, data };
}

function decode(codec, Decoder, bytes, checks) {
  const decoder = new codec[Decoder]();
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    try {
      decoder.decode();
    } catch (error) {
      // Emscripten throws C++ exceptions as bare numbers: say what failed instead.
      if (typeof error === "number") throw new Error("the stream is damaged or not supported");
      throw error;
    }
    if (checks) checks(decoder);
    return samples16(decoder.getFrameInfo(), decoder.getDecodedBuffer());
  } finally {
    decoder.delete();
  }
}

function losslessOnly(decoder) {
  if (decoder.getNearLossless() !== 0) throw new Error("The exact data is not lossless JPEG-LS.");
}

self.onmessage = async (event) => {
  const { id, bytes, prepare } = event.data;
  if (prepare === "jpegls") {
    try { charls(); } catch { /* the decode that follows says why */ }
    return;
  }
  try {
    const view = new Uint8Array(bytes);
    const image = isJpegLs(view)
      ? decode(await charls(), "JpegLSDecoder", view, losslessOnly)
      : decode(await openjphCodec, "HTJ2KDecoder", view, null);
    self.postMessage({ id, ...image }, [image.data.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message ? error.message : error) });
  }
};
