// Decoder for the viewer's full-resolution derivative (app/viewer/FORMAT.md): a greyscale
// PNG with 16-bit samples (8-bit also accepted), not interlaced.
//
// Why not <img>, createImageBitmap or a canvas: browsers reduce 16-bit PNGs to 8 bits,
// which would throw away the stored bit depth that window/level works on. Inflating uses
// the browser's own zlib (DecompressionStream), so this module has no dependencies.

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// Far above any chest radiograph (~4300 x 4300), low enough that a hostile header cannot
// make us allocate gigabytes before the data is even inflated.
const MAX_PIXELS = 64 * 1024 * 1024;

function fail(message) {
  return new Error(`PNG decode failed: ${message}`);
}

function u32(bytes, at) {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function chunkType(bytes, at) {
  return String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
}

// Split the file into IHDR fields and the IDAT payloads; every length is checked against
// the bytes actually present, so a truncated download fails here with a clear message.
// CRCs are not checked: the zlib stream carries its own Adler-32, which catches corrupt
// image data, and skipping CRC-32 saves ~15 ms on a 5 MB file.
function readChunks(bytes) {
  if (bytes.length < SIGNATURE.length || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw fail("not a PNG file (bad signature)");
  }
  let header = null;
  const idats = [];
  let at = SIGNATURE.length;
  for (;;) {
    if (at + 8 > bytes.length) throw fail("file is truncated (no IEND chunk)");
    const length = u32(bytes, at);
    const type = chunkType(bytes, at + 4);
    const start = at + 8;
    if (length > 0x7fffffff || start + length + 4 > bytes.length) {
      throw fail(`file is truncated (chunk ${type} declares ${length} bytes, ` +
                 `${Math.max(bytes.length - start - 4, 0)} present)`);
    }
    const data = bytes.subarray(start, start + length);
    at = start + length + 4;
    if (header === null) {
      if (type !== "IHDR" || length !== 13) throw fail("the first chunk is not a valid IHDR");
      header = {
        width: u32(data, 0),
        height: u32(data, 4),
        bitDepth: data[8],
        colorType: data[9],
        compression: data[10],
        filter: data[11],
        interlace: data[12],
      };
    } else if (type === "IDAT") {
      if (length) idats.push(data);
    } else if (type === "IEND") {
      break;
    } else if (type === "IHDR") {
      throw fail("more than one IHDR chunk");
    }
    // Ancillary chunks (gAMA, tEXt, ...) carry nothing the viewer needs.
  }
  return { header, idats };
}

function checkHeader({ width, height, bitDepth, colorType, compression, filter, interlace }) {
  if (colorType !== 0) {
    throw fail(`unsupported colour type ${colorType} (only greyscale, type 0, is supported)`);
  }
  if (bitDepth !== 16 && bitDepth !== 8) {
    throw fail(`unsupported bit depth ${bitDepth} (only 16 and 8 are supported)`);
  }
  if (interlace !== 0) throw fail("interlaced PNGs are not supported");
  if (compression !== 0 || filter !== 0) throw fail("unknown compression or filter method");
  if (width < 1 || height < 1) throw fail(`invalid size ${width}x${height}`);
  if (width * height > MAX_PIXELS) {
    throw fail(`image of ${width}x${height} exceeds the limit of ${MAX_PIXELS} pixels`);
  }
}

// Inflate straight into a buffer of the exact expected size: more output than the header
// allows is an error (and stops a decompression bomb early), less is a truncated image.
async function inflate(idats, expected) {
  const out = new Uint8Array(expected);
  const stream = new Blob(idats).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  let filled = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > expected) {
        await reader.cancel();
        throw fail("image data is longer than the IHDR size allows");
      }
      out.set(value, filled);
      filled += value.length;
    }
  } catch (error) {
    const message = String(error?.message ?? error);
    if (message.startsWith("PNG decode failed")) throw error;
    throw fail(`image data is truncated or corrupt (${message})`); // from the inflater
  }
  if (filled !== expected) {
    throw fail(`image data is truncated (${filled} of ${expected} bytes after inflating)`);
  }
  return out;
}

// Undo the row filters in place (PNG spec section 9). `bpp` is bytes per pixel (2 for
// 16-bit grey, 1 for 8-bit); `stride` is the row length without its filter-type byte.
// Loops are split at `bpp` so that the hot paths have no "is there a left pixel" test.
function unfilter(raw, height, stride, bpp) {
  const rowLength = stride + 1;
  for (let y = 0; y < height; y++) {
    const row = y * rowLength + 1; // first data byte of this row
    const up = row - rowLength; // same byte in the previous row (already unfiltered)
    const type = raw[row - 1];
    const first = y > 0; // the row above counts as zeros for the first row
    switch (type) {
      case 0:
        break;
      case 1: // Sub
        for (let i = bpp; i < stride; i++) raw[row + i] = (raw[row + i] + raw[row + i - bpp]) & 255;
        break;
      case 2: // Up
        if (first) for (let i = 0; i < stride; i++) raw[row + i] = (raw[row + i] + raw[up + i]) & 255;
        break;
      case 3: // Average
        if (first) {
          for (let i = 0; i < bpp; i++) raw[row + i] = (raw[row + i] + (raw[up + i] >> 1)) & 255;
          for (let i = bpp; i < stride; i++) {
            raw[row + i] = (raw[row + i] + ((raw[row + i - bpp] + raw[up + i]) >> 1)) & 255;
          }
        } else {
          for (let i = bpp; i < stride; i++) {
            raw[row + i] = (raw[row + i] + (raw[row + i - bpp] >> 1)) & 255;
          }
        }
        break;
      case 4: // Paeth; with no row above it reduces to Sub
        if (first) {
          for (let i = 0; i < bpp; i++) raw[row + i] = (raw[row + i] + raw[up + i]) & 255;
          for (let i = bpp; i < stride; i++) {
            const a = raw[row + i - bpp];
            const b = raw[up + i];
            const c = raw[up + i - bpp];
            const pa = Math.abs(b - c);
            const pb = Math.abs(a - c);
            const pc = Math.abs(a + b - c - c);
            const p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            raw[row + i] = (raw[row + i] + p) & 255;
          }
        } else {
          for (let i = bpp; i < stride; i++) raw[row + i] = (raw[row + i] + raw[row + i - bpp]) & 255;
        }
        break;
      default:
        throw fail(`invalid filter type ${type} in row ${y}`);
    }
  }
}

/**
 * Decode a greyscale PNG (colour type 0, bit depth 16 or 8, not interlaced).
 * @param {ArrayBuffer|Uint8Array} buffer the PNG file
 * @returns {Promise<{width: number, height: number, bitDepth: number, data: Uint16Array}>}
 *   samples row-major, top row first, as numbers (PNG's big-endian order undone)
 * @throws {Error} with a readable message for anything else, or truncated/corrupt data
 */
export async function decodePng16(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  const { header, idats } = readChunks(bytes);
  checkHeader(header);
  if (!idats.length) throw fail("no image data (IDAT chunk)");
  const { width, height, bitDepth } = header;
  const bpp = bitDepth / 8;
  const stride = width * bpp;
  const raw = await inflate(idats, height * (stride + 1));
  unfilter(raw, height, stride, bpp);

  const data = new Uint16Array(width * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    let p = y * (stride + 1) + 1;
    if (bpp === 2) {
      for (let x = 0; x < width; x++, p += 2) data[o++] = (raw[p] << 8) | raw[p + 1];
    } else {
      for (let x = 0; x < width; x++) data[o++] = raw[p++];
    }
  }
  return { width, height, bitDepth, data };
}
