// Live deployment states: the backend's server-sent events stream
// (GET /api/v1/events). EventSource cannot send an Authorization header, so
// each connection is opened with a fresh single-use ticket (POST
// /ws-tickets). A ticket cannot be reused, so EventSource's own reconnect
// would fail: on any error this closes the source and reconnects with a new
// ticket after a growing delay. Events may have been missed while away, so
// every reconnect (and every `resync` from the server) tells listeners to
// re-read what they show.

export interface DeploymentEvent {
  deployment_id: string;
  app_id: string;
  state: string;
  changed_at: string;
}

export type EventsListener = {
  deployment?: (event: DeploymentEvent) => void;
  /** Some events may have been missed: re-read. */
  resync?: () => void;
  /** Whether the stream is connected (pages fall back to polling when not). */
  connection?: (connected: boolean) => void;
};

/** The parts of EventSource used here, so tests can give a fake. */
export interface SourceLike {
  addEventListener(type: string, listener: (e: MessageEvent) => void): void;
  onopen: ((e: Event) => void) | null;
  onerror: ((e: Event) => void) | null;
  close(): void;
}

export interface EventsOptions {
  /** A fresh ticket for each connection. */
  ticket: () => Promise<string>;
  open?: (url: string) => SourceLike;
  url?: string;
  /** Delay before reconnect attempt n (0-based). */
  backoff?: (attempt: number) => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (id: unknown) => void;
}

/** 1 s, 2 s, 4 s … up to 30 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
}

export class DeploymentEvents {
  private source: SourceLike | null = null;
  private timer: unknown = null;
  private attempt = 0;
  private everConnected = false;
  private running = false;
  private connected = false;
  private generation = 0;
  private readonly listeners = new Set<EventsListener>();
  private readonly opts: Required<Omit<EventsOptions, "ticket">> & Pick<EventsOptions, "ticket">;

  constructor(opts: EventsOptions) {
    this.opts = {
      open: (url) => new EventSource(url),
      url: "/api/v1/events",
      backoff: reconnectDelay,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
      ...opts,
    };
  }

  get isConnected(): boolean {
    return this.connected;
  }

  subscribe(listener: EventsListener): () => void {
    this.listeners.add(listener);
    listener.connection?.(this.connected);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.generation++;
    if (this.timer !== null) this.opts.clearTimer(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
    this.everConnected = false;
    this.setConnected(false);
  }

  private emit(fn: (l: EventsListener) => void): void {
    for (const l of [...this.listeners]) fn(l);
  }

  private setConnected(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    this.emit((l) => l.connection?.(connected));
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    let ticket: string;
    try {
      ticket = await this.opts.ticket();
    } catch {
      if (generation === this.generation) this.retry();
      return;
    }
    if (generation !== this.generation || !this.running) return;
    const source = this.opts.open(`${this.opts.url}?ticket=${encodeURIComponent(ticket)}`);
    this.source = source;
    source.onopen = () => {
      if (generation !== this.generation) return;
      this.attempt = 0;
      this.setConnected(true);
      // Anything may have changed while there was no stream.
      if (this.everConnected) this.emit((l) => l.resync?.());
      this.everConnected = true;
    };
    source.onerror = () => {
      if (generation !== this.generation) return;
      source.close();
      this.source = null;
      this.setConnected(false);
      this.retry();
    };
    source.addEventListener("deployment", (e) => {
      if (generation !== this.generation) return;
      let event: DeploymentEvent;
      try {
        event = JSON.parse(e.data as string) as DeploymentEvent;
      } catch {
        return;
      }
      this.emit((l) => l.deployment?.(event));
    });
    source.addEventListener("resync", () => {
      if (generation === this.generation) this.emit((l) => l.resync?.());
    });
  }

  private retry(): void {
    if (!this.running) return;
    const delay = this.opts.backoff(this.attempt++);
    this.timer = this.opts.setTimer(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }
}
