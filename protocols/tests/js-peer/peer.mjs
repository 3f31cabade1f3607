// A js-libp2p node over TCP + Noise + Yamux with ping and identify, for the
// interop tests. Prints one line per fact the test checks:
//   LISTEN <multiaddr>            (listen mode)
//   IDENTIFIED <peer> <agent> <observed address> <listen addresses...>
//   PING <rtt ms>                 (dial mode, three times)
//   DONE
// Usage: node --import ./polyfill.mjs peer.mjs dial <multiaddr>
//        node --import ./polyfill.mjs peer.mjs listen <seconds>
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

const [mode, arg] = process.argv.slice(2)
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
if (mode === 'listen') {
  console.log('LISTEN', node.getMultiaddrs().map(String)[0])
  setTimeout(() => { console.log('DONE'); process.exit(0) }, Number(arg) * 1000)
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
