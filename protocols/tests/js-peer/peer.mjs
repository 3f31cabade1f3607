// A js-libp2p node over TCP + Noise + Yamux with ping, identify and a
// /perf/1.0.0 server and client (libp2p/specs perf; written here because
// @libp2p/perf is not on the registry this repo installs from), for the
// interop tests. Prints one line per fact the test checks:
//   LISTEN <multiaddr>            (listen mode)
//   IDENTIFIED <peer> <agent> <observed address> <listen addresses...>
//   PING <rtt ms>                 (dial mode, three times)
//   PERF <uploaded> <downloaded>  (perf mode, one line per stream)
//   DONE
// Usage: node --import ./polyfill.mjs peer.mjs dial <multiaddr>
//        node --import ./polyfill.mjs peer.mjs listen <seconds>
//        node --import ./polyfill.mjs peer.mjs perf <multiaddr> <streams> <up> <down>
//          (<streams> perf streams in parallel on one connection, each
//          uploading <up> and downloading <down> bytes)
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { pEvent } from 'p-event'

const PERF = '/perf/1.0.0'
const CHUNK = new Uint8Array(64 * 1024)

const [mode, arg, ...rest] = process.argv.slice(2)
const node = await createLibp2p({
  addresses: { listen: mode === 'listen' ? ['/ip4/127.0.0.1/tcp/0'] : [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { ping: ping(), identify: identify() },
})
node.addEventListener('peer:identify', (e) => {
  const d = e.detail
  console.log('IDENTIFIED', d.peerId.toString(), d.agentVersion, String(d.observedAddr),
    ...d.listenAddrs.map(String))
})

// Send `n` bytes, waiting for the stream to drain when it asks to.
async function sendBytes (stream, n) {
  while (n > 0) {
    const len = Math.min(n, CHUNK.length)
    if (!stream.send(CHUNK.subarray(0, len))) {
      await pEvent(stream, 'drain', { rejectionEvents: ['close'] })
    }
    n -= len
  }
}

// Server: an 8-byte big-endian count, then the upload until EOF; then the
// count in bytes back, and close.
await node.handle(PERF, async (stream) => {
  let header = new Uint8Array(0)
  let want = null
  for await (const buf of stream) {
    if (want !== null) continue
    const bytes = buf.subarray()
    const joined = new Uint8Array(header.length + bytes.length)
    joined.set(header)
    joined.set(bytes, header.length)
    header = joined
    if (header.length >= 8) {
      want = Number(new DataView(header.buffer, header.byteOffset, 8).getBigUint64(0))
    }
  }
  await sendBytes(stream, want ?? 0)
  await stream.close()
}, { maxInboundStreams: 256 })

// Client: one perf run on a new stream; resolves to [uploaded, downloaded].
async function perfRun (target, up, down) {
  const stream = await node.dialProtocol(target, PERF)
  const header = new Uint8Array(8)
  new DataView(header.buffer).setBigUint64(0, BigInt(down))
  let received = 0
  const done = new Promise((resolve, reject) => {
    stream.addEventListener('message', (e) => { received += e.data.byteLength })
    stream.addEventListener('close', (e) => e.error ? reject(e.error) : resolve())
  })
  stream.send(header)
  await sendBytes(stream, up)
  await stream.close()
  await done
  return [up, received]
}

if (mode === 'listen') {
  console.log('LISTEN', node.getMultiaddrs().map(String)[0])
  setTimeout(() => { console.log('DONE'); process.exit(0) }, Number(arg) * 1000)
} else if (mode === 'perf') {
  const target = multiaddr(arg)
  const [streams, up, down] = rest.map(Number)
  await node.dial(target)
  const runs = await Promise.all(Array.from({ length: streams }, () => perfRun(target, up, down)))
  for (const [u, d] of runs) console.log('PERF', u, d)
  console.log('DONE')
  process.exit(0)
} else {
  const target = multiaddr(arg)
  for (let i = 0; i < 3; i++) {
    console.log('PING', await node.services.ping.ping(target))
  }
  // Give identify a moment to finish before leaving.
  await new Promise((r) => setTimeout(r, 300))
  console.log('DONE')
  process.exit(0)
}
