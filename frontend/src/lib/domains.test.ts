import { describe, expect, it } from "vitest";
import type { Domain } from "../api/types";
import { certificateText, domainBadge, hostnameProblem } from "./domains";

function domain(over: Partial<Domain> = {}): Domain {
  return {
    hostname: "shop.example.org",
    environment: "production",
    status: "verified",
    url: "https://shop.example.org",
    dns_records: [],
    verification: { checked_at: null, error: null },
    certificate: { state: "issued", issuer: "R11", expires_at: "2027-03-01T00:00:00Z", checked_at: null, error: null },
    verified_at: "2026-12-01T00:00:00Z",
    created_at: "2026-12-01T00:00:00Z",
    ...over,
  };
}

describe("domains", () => {
  it("says whether a domain waits for DNS or serves, and how securely", () => {
    expect(domainBadge(domain({ status: "pending_verification" })).label).toBe("waiting for DNS");
    expect(
      domainBadge(domain({ status: "pending_verification", verification: { checked_at: null, error: "no TXT" } })).tone,
    ).toBe("warning");
    expect(domainBadge(domain()).label).toBe("serving over HTTPS");
    const failing = domain({ certificate: { ...domain().certificate, state: "failed", error: "rate limited" } });
    expect(domainBadge(failing)).toEqual({ label: "certificate failing", tone: "danger" });
    expect(certificateText(failing)).toBe("rate limited");
    const plain = domain({ certificate: { ...domain().certificate, state: "not_applicable" } });
    expect(domainBadge(plain).label).toBe("serving over HTTP");
    expect(certificateText(plain)).toBeNull();
  });

  it("names the issuer and the expiry of a served certificate", () => {
    expect(certificateText(domain())).toBe(
      "Certificate from R11, valid until 2027-03-01; renewed automatically.",
    );
  });

  it("checks a typed hostname as the API does", () => {
    expect(hostnameProblem("Shop.Example.org.")).toBeNull();
    expect(hostnameProblem("xn--bcher-kva.example")).toBeNull();
    for (const bad of ["", "https://x.org", "x.org:8443", "*.x.org", "bücher.de", "intranet", "a.localhost", "10.0.0.1", "-a.x.org", "a..x.org"]) {
      expect(hostnameProblem(bad), bad).not.toBeNull();
    }
  });
});
