// Runs an ONNX model with onnxruntime-node (CPU EP) for the "onnxruntime" peer of
// `dvm bench --peers` (bench/peers/onnxrt.py exports the model; protocol:
// bench/peers/README.md).
//
//   node bench/peers/ort_run.mjs MODEL.onnx DIR THREADS REPS PEER NAMES [OPTIMIZED.onnx]
//
// Feeds every graph input NAME from DIR/NAME.npy, runs once to warm up, then REPS timed
// runs (process.hrtime.bigint() around each session.run), then one more, untimed run whose
// outputs it writes: the model's i-th output to DIR/NAME.PEER.npy, NAME the i-th of the
// comma-separated NAMES (the dvm names of the graph's outputs). Model outputs after those
// are probes (see below) that the timed runs fetch instead. Prints one JSON line:
// {"peer", "median_us", "p90_us", "reps"}. The timed span includes onnxruntime-node's JS
// binding (input wrapping, a setImmediate and a Promise per run): about 15 us per run on
// the bench machine.
// Session: intraOpNumThreads = THREADS, interOpNumThreads = 1, sequential execution,
// graphOptimizationLevel 'all'. With OPTIMIZED.onnx, ORT also writes its optimized graph.
// A model ORT has no CPU kernel for prints a "skip" line; other errors exit 1.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const HINT = 'cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm install';
const [modelPath, dir, threadsArg, repsArg, peerArg, namesArg, optimizedPath] = process.argv.slice(2);
const peer = peerArg || 'onnxruntime';

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

if (!modelPath || !dir) {
  process.stderr.write('usage: node ort_run.mjs MODEL.onnx DIR THREADS REPS PEER NAMES [OPTIMIZED.onnx]\n');
  process.exit(2);
}

let ort;
try {
  ort = createRequire(import.meta.url)('onnxruntime-node');
} catch (e) {
  emit({ peer, skip: `onnxruntime-node cannot be loaded (${String(e.message).split('\n')[0]}): ${HINT}` });
  process.exit(0);
}

// ---- .npy ------------------------------------------------------------------------------

const NPY_TYPES = {
  // descr -> [ORT type, TypedArray, element size]
  '<f4': ['float32', Float32Array, 4],
  '<f8': ['float64', Float64Array, 8],
  '<f2': ['float16', Uint16Array, 2],
  '<i4': ['int32', Int32Array, 4],
  '<i8': ['int64', BigInt64Array, 8],
  '|b1': ['bool', Uint8Array, 1],
  '|u1': ['uint8', Uint8Array, 1],
  '|i1': ['int8', Int8Array, 1],
};
const ORT_TO_DESCR = Object.fromEntries(Object.entries(NPY_TYPES).map(([d, [t]]) => [t, d]));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${file}: bad .npy header ${header}`);
  if (fortran[1] === 'True') throw new Error(`${file}: Fortran order is not supported`);
  const t = NPY_TYPES[descr[1] === '<b1' ? '|b1' : descr[1]];
  if (!t) throw new Error(`${file}: unsupported .npy dtype ${descr[1]}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const [type, Arr, size] = t;
  const off = hstart + hlen;
  if (buf.length - off < count * size) throw new Error(`${file}: truncated`);
  // copy into a fresh, aligned buffer
  const ab = new ArrayBuffer(count * size);
  new Uint8Array(ab).set(buf.subarray(off, off + count * size));
  return new ort.Tensor(type, new Arr(ab), dims);
}

function writeNpy(file, tensor) {
  const descr = ORT_TO_DESCR[tensor.type];
  if (!descr) throw new Error(`output type ${tensor.type} cannot be written as .npy`);
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93;
  pre.write('NUMPY', 1, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const d = tensor.data;
  const body = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}


// ---- run -------------------------------------------------------------------------------

const threads = Math.max(1, parseInt(threadsArg || '1', 10));
const reps = Math.max(1, parseInt(repsArg || '10', 10));

const options = {
  executionProviders: ['cpu'],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
};
if (optimizedPath) options.optimizedModelFilePath = optimizedPath;

let session;
try {
  session = await ort.InferenceSession.create(modelPath, options);
} catch (e) {
  const msg = String(e && e.message ? e.message : e);
  if (/NOT_IMPLEMENTED|Could not find an implementation|not supported|NotImplemented/i.test(msg)) {
    emit({ peer, skip: `onnxruntime cannot run this graph: ${msg.split('\n')[0]}` });
    process.exit(0);
  }
  throw e;
}

const feeds = {};
for (const name of session.inputNames) {
  feeds[name] = readNpy(path.join(dir, `${name}.npy`));
}

// The model's outputs: first the graph's (named by NAMES), then optionally one probe per
// output (onnxrt.py adds them: the output's first element). Timed runs fetch only the
// probes: onnxruntime-node copies each fetched output into a fresh JS ArrayBuffer after the
// run (even into pre-allocated fetches), which for large outputs costs more than the run
// itself; the graph's outputs are still computed in full, into ORT's arena.
const names = namesArg ? namesArg.split(',') : session.outputNames;
if (names.length > session.outputNames.length) {
  throw new Error(`NAMES has ${names.length} names, the model ${session.outputNames.length} outputs`);
}
const real = session.outputNames.slice(0, names.length);
const probes = session.outputNames.slice(names.length);
const timedFetches = probes.length ? probes : real;

await session.run(feeds, timedFetches); // warm-up
const times = [];
for (let i = 0; i < reps; i++) {
  const t0 = process.hrtime.bigint();
  await session.run(feeds, timedFetches);
  const t1 = process.hrtime.bigint();
  times.push(Number(t1 - t0) / 1000);
}

const outs = await session.run(feeds, real); // untimed: the outputs to compare
real.forEach((name, i) => {
  writeNpy(path.join(dir, `${names[i]}.${peer}.npy`), outs[name]);
});
await session.release();

times.sort((a, b) => a - b);
const n = times.length;
const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
const p90 = times[Math.min(n - 1, Math.max(0, Math.ceil(0.9 * n) - 1))];
emit({ peer, median_us: median, p90_us: p90, reps });
