/**
 * A throwaway PostgreSQL cluster with TLS on, for the sslmode tests: a CA made here (openssl), a server
 * certificate it signed for `localhost` only (so 127.0.0.1 is the wrong host for verify-full), and a
 * cluster from the machine's own PostgreSQL binaries (initdb, pg_ctl) on a free port. Run as root (as
 * CI is), the cluster belongs to the `postgres` user, as the server refuses to run as root.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"

export interface TlsCluster {
  readonly port: number
  /** the CA that signed the server certificate */
  readonly caFile: string
  /** a CA that did not */
  readonly otherCaFile: string
  readonly stop: () => void
}

/** the bin directory of the newest PostgreSQL installed the Debian way, if any */
export const pgBin = (): string | undefined => {
  const root = "/usr/lib/postgresql"
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a))
  return versions.length === 0 ? undefined : join(root, versions[0]!, "bin")
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

const openssl = (cwd: string, ...args: Array<string>) => execFileSync("openssl", args, { cwd, stdio: "pipe" })

const makeCa = (dir: string, name: string) => {
  openssl(dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${name}`,
    "-keyout", `${name}.key`, "-out", `${name}.crt`)
}

export const startTlsCluster = async (): Promise<TlsCluster> => {
  const bin = pgBin()
  if (bin === undefined) throw new Error("no PostgreSQL binaries under /usr/lib/postgresql")
  const dir = mkdtempSync(join(tmpdir(), "ferry-tls-"))
  makeCa(dir, "ca")
  makeCa(dir, "otherca")
  writeFileSync(join(dir, "san.ext"), "subjectAltName=DNS:localhost\n")
  openssl(dir, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
  openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
    "-extfile", "san.ext", "-out", "server.crt")

  const asRoot = userInfo().uid === 0
  const run = (cmd: string, args: Array<string>) =>
    asRoot
      ? execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { stdio: "pipe" })
      : execFileSync(cmd, args, { stdio: "pipe" })
  const data = join(dir, "data")
  if (asRoot) {
    // the server runs as postgres: it must own the directory and its key (mode 0600)
    const { gid, uid } = { uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) }
    chmodSync(dir, 0o755)
    for (const f of ["server.key", "server.crt"]) chownSync(join(dir, f), uid, gid)
    chownSync(dir, uid, gid)
  }
  chmodSync(join(dir, "server.key"), 0o600)
  run(join(bin, "initdb"), ["-D", data, "--auth=trust", "-U", "postgres", "--no-sync"])
  const port = await freePort()
  const options = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    "-c ssl=on",
    `-c ssl_cert_file=${join(dir, "server.crt")}`,
    `-c ssl_key_file=${join(dir, "server.key")}`,
    "-c fsync=off"
  ].join(" ")
  run(join(bin, "pg_ctl"), ["-D", data, "-o", options, "-l", join(dir, "log"), "-w", "start"])
  return {
    port,
    caFile: join(dir, "ca.crt"),
    otherCaFile: join(dir, "otherca.crt"),
    stop: () => {
      try {
        run(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"])
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
}
