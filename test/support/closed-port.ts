// A port nobody listens on, so a connect to it is refused: port 1, which no run's cluster or server is given.
import net from 'node:net'

/**
 * Port 1 (below the ephemeral range, where every port a run's clusters and servers take lies), once
 * a connect to it is seen refused. Not a port taken and given back: another run starting a cluster
 * or server at once could take it meanwhile, and its answer is no refusal (CI met that: a run of
 * failures logged twice, its cause changed). Where something listens on 1, that older way.
 */
let closed: Promise<number> | undefined
export function closedPort(): Promise<number> {
  closed ??= refused(1).then(async (yes) => (yes ? 1 : await givenBack()))
  return closed
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })

async function givenBack(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}
