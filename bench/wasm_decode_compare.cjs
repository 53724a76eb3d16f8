// Browser-side decode time of RG1's exact 16-bit data: HTJ2K with the OpenJPH WebAssembly
// build the viewer vendors, against JPEG-LS with CharLS's (npm @cornerstonejs/codec-charls),
// in Node (the V8 of Chromium). FORMAT.md, "Why HTJ2K for the 16-bit data".
//
//   npm pack @cornerstonejs/codec-charls@1.2.7 && tar xzf cornerstonejs-codec-charls-1.2.7.tgz
//   .venv/bin/python - <<'PY'   # RG1's stored values, HTJ2K and JPEG-LS streams
//   import imagecodecs, pydicom; from pydicom.data import get_testdata_file
//   a = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array
//   open("rg1.raw", "wb").write(a.tobytes())
//   open("rg1.j2c", "wb").write(imagecodecs.htj2k_encode(a))
//   open("rg1.jls", "wb").write(imagecodecs.jpegls_encode(a))
//   PY
//   node bench/wasm_decode_compare.cjs <folder with rg1.* and package/>
const fs = require("fs");
const path = require("path");

const folder = process.argv[2] || ".";
const OpenJPH = require(path.resolve(__dirname, "../app/static/vendor/openjph/openjphjs.js"));
const CharLS = require(path.resolve(folder, "package/dist/charlswasm_decode.js"));

function time(decoder, bytes) {
  decoder.getEncodedBuffer(bytes.length).set(bytes);
  const start = performance.now();
  decoder.decode();
  const ms = performance.now() - start;
  const out = decoder.getDecodedBuffer();
  const samples = new Uint16Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.length));
  decoder.delete();
  return { ms, samples };
}

(async () => {
  const [openjph, charls] = [await OpenJPH(), await CharLS()];
  const raw = new Uint16Array(fs.readFileSync(path.join(folder, "rg1.raw")).buffer.slice(0));
  const j2c = fs.readFileSync(path.join(folder, "rg1.j2c"));
  const jls = fs.readFileSync(path.join(folder, "rg1.jls"));
  const same = (a) => a.length === raw.length && a.every((v, i) => v === raw[i]);
  const runs = { htj2k: [], jpegls: [] };
  for (let i = 0; i < 7; i++) { // A B A B
    const h = time(new openjph.HTJ2KDecoder(), j2c);
    const l = time(new charls.JpegLSDecoder(), jls);
    if (!same(h.samples) || !same(l.samples)) throw new Error("not bit-exact");
    runs.htj2k.push(h.ms); runs.jpegls.push(l.ms);
  }
  const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(`HTJ2K   ${j2c.length} B  median ${median(runs.htj2k).toFixed(0)} ms`);
  console.log(`JPEG-LS ${jls.length} B  median ${median(runs.jpegls).toFixed(0)} ms`);
  console.log(`JPEG-LS / HTJ2K: bytes ${(jls.length / j2c.length).toFixed(3)}x, ` +
              `decode ${(median(runs.jpegls) / median(runs.htj2k)).toFixed(2)}x`);
})();
