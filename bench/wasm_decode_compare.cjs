// Browser-side decode time of the exact 16-bit data, in Node (the V8 of Chromium), with
// the WebAssembly builds the viewer vendors: HTJ2K with OpenJPH (app/static/vendor/openjph,
// the exact stage of images stored before JPEG-LS), JPEG-LS with CharLS
// (app/static/vendor/charls, the exact stage today). Run by bench/bench_exact_formats.py,
// which writes the streams; by hand:
//
//   node bench/wasm_decode_compare.cjs <folder with NAME.raw, NAME.j2c, NAME.jls> [runs]
//
// NAME.raw is the samples as little-endian uint16. Prints one JSON line per image: bytes and
// the median decode time of each (CPU time of this process, robust to other load; the
// decoders are single-threaded) after checking every decode is bit-exact; A B A B.
const fs = require("fs");
const path = require("path");

const folder = process.argv[2] || ".";
const runs = Number(process.argv[3] || 7);
const VENDOR = path.resolve(__dirname, "../app/static/vendor");
const OpenJPH = require(path.join(VENDOR, "openjph/openjphjs.js"));
const CharLS = require(path.join(VENDOR, "charls/charlswasm_decode.js"));

function decode(codec, bytes) {
  const decoder = new codec();
  decoder.getEncodedBuffer(bytes.length).set(bytes);
  const start = process.cpuUsage();
  decoder.decode();
  const used = process.cpuUsage(start);
  const out = decoder.getDecodedBuffer();
  const samples = new Uint16Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.length));
  decoder.delete();
  return { ms: (used.user + used.system) / 1000, samples };
}

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

(async () => {
  const [openjph, charls] = [await OpenJPH(), await CharLS()];
  const codecs = { j2c: openjph.HTJ2KDecoder, jls: charls.JpegLSDecoder };
  const names = fs.readdirSync(folder).filter((f) => f.endsWith(".raw")).map((f) => f.slice(0, -4));
  for (const name of names.sort()) {
    const raw = new Uint16Array(fs.readFileSync(path.join(folder, `${name}.raw`)).buffer.slice(0));
    const same = (a) => a.length === raw.length && a.every((v, i) => v === raw[i]);
    const result = { name };
    const streams = {};
    for (const ext of Object.keys(codecs)) {
      streams[ext] = fs.readFileSync(path.join(folder, `${name}.${ext}`));
      result[ext] = { bytes: streams[ext].length, ms: [] };
    }
    for (let i = 0; i < runs; i++) {
      for (const ext of Object.keys(codecs)) { // A B A B
        const { ms, samples } = decode(codecs[ext], streams[ext]);
        if (!same(samples)) throw new Error(`${name}.${ext}: not bit-exact`);
        result[ext].ms.push(ms);
      }
    }
    for (const ext of Object.keys(codecs)) result[ext].ms = median(result[ext].ms);
    console.log(JSON.stringify(result));
  }
})();
