import { stateDisplay } from "../lib/states";

export function StateBadge({ state }: { state: string | null | undefined }) {
  const d = stateDisplay(state);
  return (
    <span className={`badge tone-${d.tone}`} data-state={state ?? "none"}>
      {!d.final && <span className="pulse" aria-hidden="true" />}
      {d.label}
    </span>
  );
}
