'use strict';
// s3-server.js - an S3-compatible server for reeve's tests that checks
// AWS Signature Version 4 like S3 does.
//
//   node s3-server.js --port N --dir DIR --access-key AK --secret SK --bucket B
//                     [--ready-file FILE] [--flaky-log FILE]
//
// Listens on 127.0.0.1 only (port 0: any free port), stores objects below
// DIR, creates bucket B and, once it accepts requests, prints "ready <port>"
// on stdout and writes the port to FILE (renamed into place) when given.
// With --flaky-log, the first attempt at part 2 of every multipart upload
// and at every ranged GET that does not start at byte 0 is answered
// 503 SlowDown, and each such answer is logged as a line in FILE, so tests
// can check that clients retry.
// SIGTERM or SIGINT stops it, and so does the end of the process that
// started it. REEVE_S3_SERVER_VERBOSE=1 logs every request
// (on stdout).
//
// The server is @20minutes/s3rver, which recomputes the SigV4 signature of
// every signed request (canonical request from the method, path, query and
// the signed headers; signing key from the secret of the access key id) and
// answers 403 SignatureDoesNotMatch / InvalidAccessKeyId otherwise, and
// refuses requests more than 15 minutes off the server's clock
// (RequestTimeTooSkewed). On top of it this launcher:
//   - replaces s3rver's built-in S3RVER/S3RVER key pair with the given one;
//   - refuses unsigned (anonymous) requests with 403 AccessDenied;
//   - checks x-amz-content-sha256 against the SHA-256 of the body it
//     received (400 XAmzContentSHA256Mismatch), which s3rver does not;
//   - implements AbortMultipartUpload (DELETE ?uploadId=), which s3rver
//     lacks, after s3rver has verified the request's signature.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { PassThrough } = require('stream');

// s3rver makes its ListObjectsV2 continuation tokens with single DES, which
// OpenSSL 3 keeps in its legacy provider (not loaded by default). Triple DES
// with the key repeated three times computes exactly single DES and is in
// the default provider; the tokens stay opaque to clients either way.
function singleDesViaTripleDes(orig) {
  return (alg, key, iv, ...rest) =>
    alg === 'des' ? orig('des-ede3-cbc', Buffer.concat([key, key, key]), iv, ...rest)
      : orig(alg, key, iv, ...rest);
}
crypto.createCipheriv = singleDesViaTripleDes(crypto.createCipheriv);
crypto.createDecipheriv = singleDesViaTripleDes(crypto.createDecipheriv);

// s3rver builds the canonical URI from the bucket and key it routed, which
// drops a trailing '/' (pgBackRest lists with GET /bucket/?...) and so
// refuses requests S3 accepts. SigV4 signs the path as sent: for V4
// requests the authentication middleware is made to use the request's own
// path. The replaced text is checked, so an s3rver upgrade that changes it
// fails here instead of silently changing what is verified.
const Module = require('module');
const authFile = require.resolve('@20minutes/s3rver/lib/middleware/authentication');
const loadJs = Module._extensions['.js'];
Module._extensions['.js'] = (mod, filename) => {
  if (filename !== authFile) return loadJs(mod, filename);
  const from = "    canonicalizedResource = canonicalizedResource\n      .split('/')\n      .map(encodeURIComponentRFC3986)\n      .join('/');\n";
  const to = from + "    if (mechanisms.header && /^AWS4-/.test(ctx.get('Authorization'))) {\n" +
    "      canonicalizedResource = ctx.path; // V4: the path as sent\n    }\n";
  const src = fs.readFileSync(filename, 'utf8');
  if (!src.includes(from)) throw new Error('s3-server.js: s3rver authentication changed; review the path patch');
  mod._compile(src.replace(from, to), filename);
};
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');
const S3Error = require('@20minutes/s3rver/lib/models/error');

// Request bodies checked in memory: reeve's parts in tests are a few MiB.
const BODY_MAX = 64 * 1024 * 1024;

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k.startsWith('--') || v === undefined) throw new Error(`bad argument '${k}'`);
    opts[k.slice(2)] = v;
  }
  for (const k of ['port', 'dir', 'access-key', 'secret', 'bucket']) {
    if (!opts[k]) throw new Error(`missing --${k}`);
  }
  return opts;
}

// Unsigned requests are anonymous to s3rver, which lets them through.
async function requireSignature(ctx, next) {
  if (!('authorization' in ctx.headers) && !('X-Amz-Algorithm' in ctx.query) &&
      !('Signature' in ctx.query)) {
    throw new S3Error('AccessDenied', 'Anonymous requests are refused by this test server.');
  }
  await next();
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > BODY_MAX) {
        reject(new S3Error('EntityTooLarge', 'Your proposed upload exceeds the test server limit.'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function badRequest(code, message, detail) {
  const err = new S3Error(code, message, detail);
  err.status = 400;
  err.expose = true;
  return err;
}

// Every request signed in the Authorization header must carry the real
// SHA-256 of its body (AWS would also take UNSIGNED-PAYLOAD or a streaming
// signature; reeve sends neither, and this proves it). The body is hashed
// and compared, then s3rver gets a stream of the same bytes.
async function checkPayloadHash(ctx, next) {
  if (!('authorization' in ctx.headers)) return next();
  const claimed = ctx.get('x-amz-content-sha256');
  if (!/^[0-9a-f]{64}$/.test(claimed)) {
    throw badRequest('InvalidRequest',
      'This test server requires x-amz-content-sha256 to be the lowercase hex SHA-256 of the body.');
  }
  const orig = ctx.req;
  const body = await readBody(orig);
  const actual = crypto.createHash('sha256').update(body).digest('hex');
  if (actual !== claimed) {
    throw badRequest('XAmzContentSHA256Mismatch',
      'The provided x-amz-content-sha256 header does not match what was computed.',
      { ClientComputedContentSHA256: claimed, S3ComputedContentSHA256: actual });
  }
  const replay = new PassThrough();
  for (const k of ['headers', 'rawHeaders', 'method', 'url', 'httpVersion', 'socket',
    'connection', 'complete']) {
    replay[k] = orig[k];
  }
  replay.end(body);
  ctx.req = replay;
  ctx.request.req = replay;
  await next();
}

function flaky(logFile) {
  const seen = new Set();
  return async function injectFailure(ctx, next) {
    let id = null;
    if (ctx.method === 'PUT' && ctx.query.partNumber === '2' && ctx.query.uploadId) {
      id = `part 2 of upload ${ctx.query.uploadId}`;
    } else if (ctx.method === 'GET' && /^bytes=[1-9]/.test(ctx.get('range'))) {
      id = `GET ${ctx.path} ${ctx.get('range')}`;
    }
    if (id !== null && !seen.has(id)) {
      seen.add(id);
      fs.appendFileSync(logFile, `${id}\n`);
      const err = new S3Error('SlowDown', 'Please reduce your request rate.');
      err.status = 503;
      throw err;
    }
    await next();
  };
}

// AbortMultipartUpload: s3rver answers MethodNotAllowed after it has checked
// the signature (ctx.state.account is then set); drop the upload's parts.
function abortMultipart(app) {
  return async function abort(ctx, next) {
    const isAbort = ctx.method === 'DELETE' && 'uploadId' in ctx.query;
    try {
      await next();
    } catch (err) {
      if (!isAbort || err.code !== 'MethodNotAllowed' || !ctx.state.account) throw err;
      const id = String(ctx.query.uploadId);
      const bucket = ctx.params.bucket || ctx.path.split('/')[1];
      const dir = path.join(app.store.getResourcePath(bucket, undefined, 'uploads'), id);
      if (!/^[0-9a-f]+$/.test(id) || !fs.existsSync(dir)) {
        throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: id });
      }
      fs.rmSync(dir, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
    }
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.dir, { recursive: true });
  AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(opts['access-key'], opts.secret);

  const app = new S3rver({
    address: '127.0.0.1',
    port: Number(opts.port),
    directory: opts.dir,
    silent: process.env.REEVE_S3_SERVER_VERBOSE !== '1',
    allowMismatchedSignatures: false,
    configureBuckets: [{ name: opts.bucket }],
  });
  // Ahead of s3rver's own middleware (logger, XML, router): the order
  // matters only for the abort handler, which must wrap the router.
  const ours = [requireSignature, checkPayloadHash, abortMultipart(app)];
  if (opts['flaky-log']) ours.unshift(flaky(opts['flaky-log']));
  app.middleware.unshift(...ours);
  const addr = await app.run();
  if (opts['ready-file']) {
    fs.writeFileSync(`${opts['ready-file']}.tmp`, `${addr.port}\n`);
    fs.renameSync(`${opts['ready-file']}.tmp`, opts['ready-file']);
  }
  process.stdout.write(`ready ${addr.port}\n`);
  const stop = () => app.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A test that dies without stopping its server must not leave it behind.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000).unref();
}

main().catch((err) => {
  process.stderr.write(`s3-server: ${err.message}\n`);
  process.exit(1);
});
