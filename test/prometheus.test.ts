/** The Prometheus text format writer (src/metrics/Prometheus.ts): families, labels escaped, names checked. */
import { describe, expect, it } from "vitest"
import * as Prometheus from "../src/metrics/Prometheus.js"

describe("Prometheus.format", () => {
  it("writes HELP and TYPE before each family's samples, escapes label values and help, ends in a newline", () => {
    const text = Prometheus.format([
      { name: "ferry_jobs_total", help: "Jobs.\nAll of them \\ really.", type: "counter", samples: [
        { labels: { stream: "a\"b\\c\nd" }, value: 3 },
        { labels: { stream: "plain" }, value: 0.5 }
      ] },
      { name: "ferry_up", help: "Up.", type: "gauge", samples: [{ value: 1 }, { labels: { x: "y" }, value: NaN }] },
      { name: "ferry_empty", help: "Nothing yet.", type: "gauge", samples: [] }
    ])
    expect(text).toBe([
      "# HELP ferry_jobs_total Jobs.\\nAll of them \\\\ really.",
      "# TYPE ferry_jobs_total counter",
      "ferry_jobs_total{stream=\"a\\\"b\\\\c\\nd\"} 3",
      "ferry_jobs_total{stream=\"plain\"} 0.5",
      "# HELP ferry_up Up.",
      "# TYPE ferry_up gauge",
      "ferry_up 1",
      "ferry_up{x=\"y\"} NaN",
      "# HELP ferry_empty Nothing yet.",
      "# TYPE ferry_empty gauge",
      ""
    ].join("\n"))
  })

  it("refuses a bad metric name, a bad or reserved label name, and a family written twice", () => {
    const family = (name: string, labels: Record<string, string> = {}) =>
      ({ name, help: "h", type: "gauge" as const, samples: [{ labels, value: 1 }] })
    expect(() => Prometheus.format([family("ferry-jobs")])).toThrow("not a Prometheus metric name")
    expect(() => Prometheus.format([family("1ferry")])).toThrow("not a Prometheus metric name")
    expect(() => Prometheus.format([family("ferry", { "a-b": "x" })])).toThrow("not a Prometheus label name")
    expect(() => Prometheus.format([family("ferry", { __name: "x" })])).toThrow("not a Prometheus label name")
    expect(() => Prometheus.format([family("ferry"), family("ferry")])).toThrow("written twice")
    expect(Prometheus.format([{ name: "a:b_c", help: "h", type: "counter", samples: [{ value: Infinity }] }])).toContain("a:b_c +Inf")
  })
})
