/** Decoding PNG (own decoder, zlib from node) and JPEG (jpeg-js) into 8-bit RGB. */
import { inflateSync } from 'node:zlib';

import jpeg from 'jpeg-js';

import { crc32 } from './png.js';

export interface RGBImage {
  width: number;
  height: number;
  data: Uint8Array; // width*height*3, row-major RGB
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** 8/16-bit greyscale, grey+alpha, RGB, RGBA and palette PNGs (alpha is dropped), non-interlaced. */
export function decodePNG(bytes: Uint8Array, name = 'image'): RGBImage {
  const fail = (what: string): never => {
    throw new Error(`diffvit.decodePNG: ${name}: ${what}`);
  };
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 8 || sig.some((v, i) => bytes[i] !== v)) fail('not a PNG file (bad signature)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8, width = 0, height = 0, depth = 0, colour = 0, interlace = 0;
  let palette: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) fail('truncated chunk');
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + len > bytes.length) fail(`truncated ${type} chunk`);
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    if (((crc32(bytes.subarray(pos + 4, pos + 8 + len)) ^ 0xffffffff) >>> 0) !== view.getUint32(pos + 8 + len)) fail(`CRC mismatch in ${type} chunk (corrupt file)`);
    if (type === 'IHDR') {
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      depth = body[8];
      colour = body[9];
      interlace = body[12];
    } else if (type === 'PLTE') palette = body;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  if (!width || !height) fail('no IHDR chunk');
  if (interlace) fail('interlaced PNGs are not supported');
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colour];
  if (!channels || !(depth === 8 || (depth === 16 && colour !== 3))) fail(`unsupported colour type ${colour} / bit depth ${depth}`);
  let raw: Uint8Array;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch (e) {
    fail(`corrupt image data (${(e as Error).message})`);
  }
  const bpp = (channels! * depth) / 8, stride = width * bpp;
  if (raw!.length < height * (stride + 1)) fail('image data shorter than the header says (truncated)');
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw![y * (stride + 1)];
    const src = raw!.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = px.subarray(y * stride, (y + 1) * stride);
    const prev = y ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      let v = src[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) v += paeth(a, b, c);
      else if (filter !== 0) fail(`bad filter type ${filter} on row ${y}`);
      row[i] = v & 0xff;
    }
  }
  const out = new Uint8Array(width * height * 3);
  const step = depth / 8; // take the high byte of 16-bit samples
  for (let p = 0; p < width * height; p++) {
    const base = p * bpp;
    if (colour === 3) {
      const idx = px[base];
      if (!palette || 3 * idx + 2 >= palette.length) fail(`palette index ${idx} out of range`);
      out.set(palette!.subarray(3 * idx, 3 * idx + 3), 3 * p);
    } else if (colour === 0 || colour === 4) {
      out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = px[base];
    } else {
      for (let c = 0; c < 3; c++) out[3 * p + c] = px[base + c * step];
    }
  }
  return { width, height, data: out };
}

export function decodeJPEG(bytes: Uint8Array, name = 'image'): RGBImage {
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
  } catch (e) {
    throw new Error(`diffvit.decodeJPEG: ${name}: corrupt or unsupported JPEG (${(e as Error).message})`);
  }
  const out = new Uint8Array(img.width * img.height * 3);
  for (let p = 0; p < img.width * img.height; p++) {
    out[3 * p] = img.data[4 * p];
    out[3 * p + 1] = img.data[4 * p + 1];
    out[3 * p + 2] = img.data[4 * p + 2];
  }
  return { width: img.width, height: img.height, data: out };
}

/** Decodes by content (PNG signature or JPEG SOI marker), naming `name` in errors. */
export function decodeImage(bytes: Uint8Array, name = 'image'): RGBImage {
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return decodePNG(bytes, name);
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return decodeJPEG(bytes, name);
  throw new Error(`diffvit.decodeImage: ${name}: not a PNG or JPEG file`);
}
