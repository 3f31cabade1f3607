// js-libp2p 3 uses Promise.withResolvers (Node.js 22); the machines have
// Node.js 20. Loaded with `node --import` before anything else.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
