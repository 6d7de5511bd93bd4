// Types for scripts/demo-server.mjs (plain JS so it runs with bare node), for the tests that import it.
export interface DemoOptions {
  host?: string
  port?: number
  seed?: number
  orders?: number
  customers?: number
  flaky?: number
  mutatePerRun?: number
  addPerRun?: number
  retryAfter?: number
  verbose?: boolean
}
export interface DemoServer {
  readonly url: string
  readonly close: () => Promise<void>
  readonly mutate: (n?: number, add?: number) => { updated: Array<string>; created: Array<string>; updated_at: string }
}
export declare const ORDERS_TOKEN: string
export declare const CUSTOMERS_KEY: string
export declare const startDemoServer: (options?: DemoOptions) => Promise<DemoServer>
/** mulberry32: a small seedable PRNG returning numbers in [0, 1) */
export declare const prng: (seed: number) => () => number
