import { describe, expect, it } from "vitest";
import { actionLabel, auditLine, detailsText } from "./audit";

describe("audit display", () => {
  it("names actions in words", () => {
    expect(actionLabel("app.create")).toBe("Created an app");
    expect(actionLabel("auth.login_failed")).toBe("Failed sign-in");
    expect(actionLabel("account.password_change")).toBe("Changed the password");
    expect(actionLabel("team.join")).toBe("team.join");
  });
  it("shows details briefly", () => {
    expect(detailsText({ name: "hello", trigger: "push", empty: null, nested: { a: 1 } })).toBe(
      "name: hello · trigger: push · nested: (a: 1)",
    );
    expect(detailsText({ changes: { env_changed: true, env_names: ["GREETING", "PORT"] }, name: "greeter" })).toBe(
      "changes: (env changed: yes · env names: GREETING, PORT) · name: greeter",
    );
    expect(detailsText({})).toBe("");
    expect(
      auditLine({ id: "1", actor: "me", action: "deployment.create", target_type: "deployment", details: { trigger: "user" }, created_at: "" }),
    ).toBe("Started a deployment (trigger: user)");
  });
});
