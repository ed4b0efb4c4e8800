import type { SnapshotFile } from './digest.js';
import type { SchemaShape } from './fingerprint.js';
import type { MysqlFacts, ServerInfo } from './inspect.js';
import { describePlacement, serverFor, servers, type Placement } from './placement.js';
import { openServer, type ClientSession, type DatabaseSpec, type LockOptions, type Row, type ServerFacts, type ServerSession, type TargetSession } from './session.js';
import type { StampStatement } from './stamp.js';
import { describeTarget, type DatabaseAddress, type Target } from './url.js';

/**
 * The session every command uses: one server session per server of the
 * placement, each database's questions sent to its own server. With one
 * server (the usual case) it is that server's session with nothing added.
 */
export class RoutedSession implements TargetSession {
  private constructor(
    readonly placement: Placement,
    private readonly sessions: ReadonlyMap<string, ServerSession>,
  ) {}

  static async open(placement: Placement): Promise<RoutedSession> {
    const sessions = new Map<string, ServerSession>();
    for (const t of servers(placement)) sessions.set(describeTarget(t), await openServer(t));
    return new RoutedSession(placement, sessions);
  }

  get target(): Target {
    return this.placement.default;
  }

  private of(database: string): ServerSession {
    return this.sessions.get(describeTarget(serverFor(this.placement, database)))!;
  }

  /** `names` grouped by the session of their server. */
  private grouped(names: readonly string[]): [ServerSession, string[]][] {
    const out = new Map<ServerSession, string[]>();
    for (const n of names) {
      const s = this.of(n);
      (out.get(s) ?? out.set(s, []).get(s)!).push(n);
    }
    return [...out.entries()];
  }

  async connect(): Promise<void> {
    for (const s of this.sessions.values()) await s.connect();
  }

  async rollBackInterrupted(names: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const [s, group] of this.grouped(names)) out.push(...(await s.rollBackInterrupted(group)));
    return out;
  }

  exists(name: string): Promise<boolean> {
    return this.of(name).exists(name);
  }

  read(name: string, sql: string, params?: readonly unknown[]): Promise<Row[]> {
    return this.of(name).read(name, sql, params);
  }

  hasTable(name: string, table: string): Promise<boolean> {
    return this.of(name).hasTable(name, table);
  }

  tables(name: string): Promise<string[]> {
    return this.of(name).tables(name);
  }

  shape(name: string): Promise<SchemaShape> {
    return this.of(name).shape(name);
  }

  rowCounts(name: string): Promise<Record<string, number>> {
    return this.of(name).rowCounts(name);
  }

  /** The default server's; check-migrations lists every server through inspect(). */
  serverInfo(): Promise<ServerInfo> {
    return this.sessions.get(describeTarget(this.placement.default))!.serverInfo();
  }

  async clientSessions(names: readonly string[]): Promise<{ visible: boolean; sessions: ClientSession[] }> {
    let visible = true;
    const sessions: ClientSession[] = [];
    for (const [s, group] of this.grouped(names)) {
      const r = await s.clientSessions(group);
      visible &&= r.visible;
      sessions.push(...r.sessions);
    }
    return { visible, sessions };
  }

  /** One server's facts as they are; several MySQL servers' facts together (every row names its schema). */
  async inspect(names: readonly string[]): Promise<ServerFacts> {
    const facts: ServerFacts[] = [];
    for (const [s, group] of this.grouped(names)) facts.push(await s.inspect(group));
    if (facts.length === 0) return this.sessions.get(describeTarget(this.placement.default))!.inspect([]);
    if (facts.length === 1 || facts[0]!.kind === 'sqlite') return facts[0]!;
    const all = facts.map((f) => (f as { mysql: MysqlFacts }).mysql);
    const join = <T>(pick: (m: MysqlFacts) => T[] | undefined): T[] | undefined => (all.some((m) => pick(m) === undefined) ? undefined : all.flatMap((m) => pick(m)!));
    return {
      kind: 'mysql',
      mysql: {
        canSeeAllClients: all.every((m) => m.canSeeAllClients),
        clients: all.flatMap((m) => m.clients),
        transactions: join((m) => m.transactions),
        metadataLocks: join((m) => m.metadataLocks),
        tables: all.flatMap((m) => m.tables),
      },
    };
  }

  snapshot(name: string, dir: string, level: number): Promise<SnapshotFile> {
    return this.of(name).snapshot(name, dir, level);
  }

  restore(snap: SnapshotFile): Promise<void> {
    return this.of(snap.database).restore(snap);
  }

  /** Each server's lock on its databases, in the placement's order; all released if one cannot be taken. */
  async lock(names: readonly string[], what: string, opts: LockOptions): Promise<{ release(): Promise<void> }> {
    const held: { release(): Promise<void> }[] = [];
    try {
      for (const [s, group] of this.grouped(names)) held.push(await s.lock(group, `${what}${this.sessions.size > 1 ? ` (server ${describeTarget(s.target)})` : ''}`, opts));
    } catch (err) {
      for (const h of held.reverse()) await h.release();
      throw err;
    }
    return { release: async () => { for (const h of held.reverse()) await h.release(); } };
  }

  address(name: string): DatabaseAddress {
    return this.of(name).address(name);
  }

  reachableWithoutNetwork(): boolean {
    return [...this.sessions.values()].every((s) => s.reachableWithoutNetwork());
  }

  rewrite(name: string, sql: string): Promise<number> {
    return this.of(name).rewrite(name, sql);
  }

  stamp(name: string, statements: readonly StampStatement[]): Promise<void> {
    return this.of(name).stamp(name, statements);
  }

  async drop(names: readonly string[]): Promise<void> {
    for (const [s, group] of this.grouped(names)) await s.drop(group);
  }

  create(name: string, spec: DatabaseSpec): Promise<boolean> {
    return this.of(name).create(name, spec);
  }

  async release(name?: string): Promise<void> {
    if (name !== undefined) return this.of(name).release(name);
    for (const s of this.sessions.values()) await s.release();
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.close();
  }

  describe(): string {
    return describePlacement(this.placement);
  }
}
