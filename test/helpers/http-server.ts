// Real HTTP servers for tests, on 127.0.0.1 (port 0), closed by the tests.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Starts a server whose handler gets each request with its whole body; returns it and its base URL. */
export async function startServer(handler: (req: IncomingMessage, body: Buffer, res: ServerResponse) => void): Promise<{ server: Server; base: string; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => handler(req, Buffer.concat(chunks), res))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return { server, base: `http://127.0.0.1:${port}`, port }
}

/** Closes a server started by startServer, dropping keep-alive connections. */
export function stopServer(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise<void>((r) => server.close(() => r()))
}

/** A port on 127.0.0.1 with nothing listening (bound, read, closed). */
export async function closedPort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  return port
}
