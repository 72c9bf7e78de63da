/**
 * The benchmark's saved run (JSON) and its Markdown report: medians per target and cell, ratios
 * of each icap-bridge instance to c-icap (req/s and p99) and, for the clamd scenarios, to direct
 * clamd INSTREAM; then CPU per request of every server and of the generator; then the generator's
 * ceiling against the trivial responder; then the large-body scenarios (memory, responsiveness),
 * each against its budget.
 */
import type { LoadResult } from '../loadgen.js';
import type { MachineInfo } from './machine.js';
import type { MemoryScenarioResult } from './memory-scenario.js';
import type { ResponsivenessResult } from './responsiveness-scenario.js';
import type { ScenarioName } from './scenarios.js';
import { median, round } from './stats.js';

export interface Case {
  /** Display key, e.g. "respmod-1m+preview1024". */
  key: string;
  scenario: ScenarioName;
  preview: number | undefined;
  /** Scanned by clamd (bridge service `clamd`, c-icap virus_scan), with direct INSTREAM as the limit. */
  clamd: boolean;
  /**
   * An open loop at this many requests per second (key `NAME@RATE`, e.g. "reqmod-null@20000"): every
   * target gets the same load, below its limit, so latency and CPU per request compare at equal work.
   * Absent: the closed loop, each connection sending again as soon as it has its answer.
   */
  offeredRate?: number;
}

export interface TargetInfo {
  label: string;
  kind: 'bridge' | 'c-icap' | 'clamd' | 'trivial';
  description: string;
}

export interface RunRecord {
  label: string;
  case: string;
  connections: number;
  iteration: number;
  quietBefore: { quiet: boolean; busyPercent: number; waitedMs: number } | null;
  /** Whole-machine busy % (all cores = 100) during the run. */
  machineBusyPercent: number;
  /** CPU ms the server's processes used during the run (null: not measured). */
  serverCpuMs: number | null;
  /** CPU ms clamd used during the run, for the clamd scenarios (null otherwise). */
  clamdCpuMs?: number | null;
  result: LoadResult;
}

export interface RunFile {
  tool: 'icap-bridge-bench/run';
  date: string;
  wallSeconds: number;
  machine: MachineInfo & { clamd: string | null };
  options: {
    durationS: number;
    warmupS: number;
    runs: number;
    concurrency: number[];
    cases: Case[];
    ceilingConc: number[];
    loadgenThreads: number;
    /** Which load generator ran (absent in runs before Session 16: bench/loadgen.ts). */
    generator?: 'native' | 'node';
    quietWaitMs: number;
    quietBusy: number;
  };
  targets: TargetInfo[];
  /** Spool entries each icap-bridge instance left behind at exit (should be 0). */
  spoolLeft: Record<string, number>;
  records: RunRecord[];
  /** The large-body scenarios, one per target that ran them (absent in older runs). */
  largeBody?: LargeBodyRecord[];
}

export interface LargeBodyRecord {
  label: string;
  result: MemoryScenarioResult | ResponsivenessResult;
}

export interface Stats {
  runs: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p99: number;
  p50: number;
  loadgenCpu: number;
  loadgenUsPerRequest: number;
  loadgenElu: number;
  /** Median of the runs' mean time answers waited in the generator (not in the latency); NaN for runs saved before Session 14. */
  loadgenQueueMean: number;
  /** Median of the runs' cycle p99 (loadgen.ts cycleMs); NaN for direct INSTREAM and runs saved before Session 15. */
  cycleP99: number;
  /** Open loop: median of the runs' p99 latency counted from each request's scheduled time; NaN in the closed loop. */
  p99FromDue: number;
  /** Open loop: median of the runs' p99 wait between a request's scheduled time and its write; NaN in the closed loop. */
  sendLagP99: number;
  serverUsPerRequest: number | null;
  serverCpuPercent: number | null;
  clamdUsPerRequest: number | null;
  errors: number;
  statuses: string;
}

export function summarize(records: RunRecord[], label: string, key: string, c: number): Stats | null {
  const rs = records.filter((r) => r.label === label && r.case === key && r.connections === c);
  if (rs.length === 0) return null;
  const statuses = new Map<string, number>();
  for (const r of rs) for (const [k, v] of Object.entries(r.result.statuses)) statuses.set(k, (statuses.get(k) ?? 0) + v);
  const server = rs.filter((r) => r.serverCpuMs !== null && r.result.requests > 0);
  return {
    runs: rs.length,
    rps: round(median(rs.map((r) => r.result.rps)), 1),
    rpsMin: Math.min(...rs.map((r) => r.result.rps)),
    rpsMax: Math.max(...rs.map((r) => r.result.rps)),
    p99: round(median(rs.map((r) => r.result.latencyMs.p99)), 3),
    p50: round(median(rs.map((r) => r.result.latencyMs.p50)), 3),
    loadgenCpu: round(median(rs.map((r) => r.result.cpu.percentOfOneCore)), 1),
    loadgenUsPerRequest: round(median(rs.map((r) => r.result.cpu.usPerRequest)), 2),
    loadgenElu: round(median(rs.map((r) => r.result.cpu.eventLoopUtilization)), 2),
    loadgenQueueMean: round(median(rs.map((r) => r.result.generatorQueueMs?.mean ?? Number.NaN)), 3),
    cycleP99: round(median(rs.map((r) => r.result.cycleMs?.p99 ?? Number.NaN)), 3),
    p99FromDue: round(median(rs.map((r) => r.result.openLoop?.latencyFromDueMs.p99 ?? Number.NaN)), 3),
    sendLagP99: round(median(rs.map((r) => r.result.openLoop?.sendLagMs.p99 ?? Number.NaN)), 3),
    serverUsPerRequest: server.length ? round(median(server.map((r) => (r.serverCpuMs! * 1000) / r.result.requests)), 1) : null,
    serverCpuPercent: server.length ? round(median(server.map((r) => (r.serverCpuMs! / (r.result.durationS * 1000)) * 100)), 0) : null,
    clamdUsPerRequest: (() => {
      const withClamd = rs.filter((r) => typeof r.clamdCpuMs === 'number' && r.result.requests > 0);
      return withClamd.length ? round(median(withClamd.map((r) => (r.clamdCpuMs! * 1000) / r.result.requests)), 1) : null;
    })(),
    errors: rs.reduce((a, r) => a + r.result.errors.total, 0),
    statuses: [...statuses].map(([k, v]) => `${k}×${v}`).join(' '),
  };
}

const fmt = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined): string => (a && b ? fmt(a / b, 2) : '—');

/** The clamd-direct stats for a clamd case: the plain 1 MiB row (preview rows reuse it: same bodies for clamd). */
function clamdLimit(f: RunFile, cs: Case, c: number): Stats | null {
  const plain = f.options.cases.find((x) => x.clamd && x.preview === undefined && x.scenario === cs.scenario);
  return summarize(f.records, 'clamd', plain?.key ?? cs.key, c);
}

function mainTable(f: RunFile): string {
  const bridges = f.targets.filter((t) => t.kind === 'bridge');
  const cicap = f.targets.find((t) => t.kind === 'c-icap');
  const anyClamd = f.options.cases.some((c) => c.clamd);
  const head = [
    'scenario',
    'conns',
    ...bridges.flatMap((b) => [`${b.label} req/s`, `${b.label} p99`]),
    ...(cicap ? ['c-icap req/s', 'c-icap p99'] : []),
    ...(anyClamd ? ['clamd INSTREAM req/s'] : []),
    ...(cicap ? bridges.flatMap((b) => [`**${b.label} / c-icap**`, `${b.label} / c-icap p99`]) : []),
    ...(anyClamd ? bridges.map((b) => `${b.label} / clamd`) : []),
    ...(cicap && anyClamd ? ['c-icap / clamd'] : []),
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const cs of f.options.cases.filter((x) => x.offeredRate === undefined)) {
    for (const c of f.options.concurrency) {
      const b = bridges.map((t) => summarize(f.records, t.label, cs.key, c));
      const ci = cicap ? summarize(f.records, cicap.label, cs.key, c) : null;
      const cl = cs.clamd ? clamdLimit(f, cs, c) : null;
      if (b.every((s) => s === null) && ci === null && cl === null) continue;
      const cells = [
        cs.key,
        String(c),
        ...b.flatMap((s) => [fmt(s?.rps, 0), fmt(s?.p99, 2)]),
        ...(cicap ? [fmt(ci?.rps, 0), fmt(ci?.p99, 2)] : []),
        ...(anyClamd ? [cs.clamd ? fmt(cl?.rps, 0) : ''] : []),
        ...(cicap ? b.flatMap((s) => [`**${ratio(s?.rps, ci?.rps)}**`, ratio(s?.p99, ci?.p99)]) : []),
        ...(anyClamd ? b.map((s) => (cs.clamd ? ratio(s?.rps, cl?.rps) : '')) : []),
        ...(cicap && anyClamd ? [cs.clamd ? ratio(ci?.rps, cl?.rps) : ''] : []),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

/**
 * The open-loop cases (NAME@RATE): every target served the same requests per second, so the rate is
 * not a result; latency and CPU per request are, and their ratios to c-icap's.
 */
function openLoopTable(f: RunFile): string {
  const bridges = f.targets.filter((t) => t.kind === 'bridge');
  const cicap = f.targets.find((t) => t.kind === 'c-icap');
  const lines = [
    'Each connection carries one request at a time; requests are due on a fixed schedule and wait for a free connection. ' +
      '"p99 from due" counts from when a request was due, so a server that held every connection busy pays for the requests ' +
      'that waited (the generator\'s timer slack, ~0.02–0.05 ms here, is in it too); "send lag p99" is that wait alone.',
    '',
    '| scenario | conns | target | runs | req/s | p50 ms | p99 ms | p99 from due ms | send lag p99 ms | server CPU % | server µs/req | p99 / c-icap | µs/req / c-icap |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const cs of f.options.cases.filter((x) => x.offeredRate !== undefined)) {
    for (const c of f.options.concurrency) {
      const ci = cicap ? summarize(f.records, cicap.label, cs.key, c) : null;
      for (const t of [...bridges, ...(cicap ? [cicap] : [])]) {
        const s = summarize(f.records, t.label, cs.key, c);
        if (s === null) continue;
        const vsCicap = t.kind === 'bridge' && ci !== null;
        lines.push(
          `| ${cs.key} | ${c} | ${t.label} | ${s.runs} | ${fmt(s.rps, 0)} | ${fmt(s.p50, 3)} | ${fmt(s.p99, 3)} | ${fmt(s.p99FromDue, 3)} | ${fmt(s.sendLagP99, 3)} | ` +
            `${fmt(s.serverCpuPercent, 0)} | ${fmt(s.serverUsPerRequest, 1)} | ${vsCicap ? ratio(s.p99, ci.p99) : ''} | ` +
            `${vsCicap ? ratio(s.serverUsPerRequest ?? undefined, ci.serverUsPerRequest ?? undefined) : ''} |`,
        );
      }
    }
  }
  return lines.join('\n');
}

function detailTable(f: RunFile): string {
  const lines = [
    '| scenario | conns | target | runs | req/s range | p50 ms | server CPU % | server µs/req | clamd µs/req | loadgen CPU % | loadgen µs/req | loadgen ELU | loadgen queueing mean ms | cycle p99 ms | errors | statuses |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const cs of f.options.cases) {
    for (const c of f.options.concurrency) {
      for (const t of f.targets.filter((x) => x.kind !== 'trivial')) {
        const s = summarize(f.records, t.label, cs.key, c);
        if (s === null) continue;
        lines.push(
          `| ${cs.key} | ${c} | ${t.label} | ${s.runs} | ${fmt(s.rpsMin, 0)}–${fmt(s.rpsMax, 0)} | ${fmt(s.p50, 2)} | ${fmt(s.serverCpuPercent, 0)} | ` +
            `${fmt(s.serverUsPerRequest, 1)} | ${fmt(s.clamdUsPerRequest, 0)} | ${fmt(s.loadgenCpu, 0)} | ${fmt(s.loadgenUsPerRequest, 1)} | ${fmt(s.loadgenElu, 2)} | ${fmt(s.loadgenQueueMean, 3)} | ${fmt(s.cycleP99, 2)} | ${s.errors} | ${s.statuses} |`,
        );
      }
    }
  }
  return lines.join('\n');
}

function ceilingTable(f: RunFile): string {
  const lines = [
    `Generator against ${f.targets.find((t) => t.kind === 'trivial')?.description ?? 'the trivial responder'}. "Highest measured" is the best median of any server target`,
    'for the scenario at any concurrency in this run; "trivial req/s" is the median of the runs; the target is headroom ≥ 2.',
    '',
    '| scenario | conns | runs | trivial req/s | p99 ms | loadgen CPU % | loadgen µs/req | loadgen ELU | responder CPU % | highest measured req/s | headroom × |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const servers = f.targets.filter((t) => t.kind === 'bridge' || t.kind === 'c-icap');
  for (const cs of f.options.cases.filter((x) => x.offeredRate === undefined)) {
    const best = Math.max(
      0,
      ...f.options.concurrency.flatMap((c) => servers.map((t) => summarize(f.records, t.label, cs.key, c)?.rps ?? 0)),
    );
    for (const c of f.options.ceilingConc) {
      const s = summarize(f.records, 'trivial', cs.key, c);
      if (s === null) continue;
      lines.push(
        `| ${cs.key} | ${c} | ${s.runs} | ${fmt(s.rps, 0)} | ${fmt(s.p99, 2)} | ${fmt(s.loadgenCpu, 0)} | ${fmt(s.loadgenUsPerRequest, 1)} | ${fmt(s.loadgenElu, 2)} | ` +
          `${fmt(s.serverCpuPercent, 0)} | ${best > 0 ? fmt(best, 0) : '—'} | ${best > 0 ? fmt(s.rps / best, 2) : '—'} |`,
      );
    }
  }
  return lines.join('\n');
}

const MiB = (bytes: number | null | undefined): string => fmt(bytes === null || bytes === undefined ? null : bytes / 2 ** 20, 1);
const verdict = (ok: boolean, pass: boolean): string => (!ok ? '**FAIL** (see below)' : pass ? 'pass' : '**over budget**');

function memoryTable(rows: { label: string; r: MemoryScenarioResult }[]): string {
  const budget = rows[0]!.r.budgetBytes;
  const lines = [
    `${rows[0]!.r.connections} connections each send one RESPMOD of ${MiB(rows[0]!.r.bodyBytes)} MiB at once (Allow: 204). ` +
      `Memory of every icap-bridge process (primary and workers) sampled every 50 ms; budget: peak of the summed RSS ≤ ${MiB(budget)} MiB. ` +
      'Per process: peak sampled RSS, then VmHWM (reset at the start). At the peak: RssAnon / RssFile summed (file pages such as ' +
      "node's own text are shared between processes but counted in each one's RSS).",
    '',
    '| target | service | statuses | wall s | MiB/s | RSS before MiB | **peak RSS sum MiB** | VmHWM sum MiB | anon / file at peak MiB | per process: peak RSS (VmHWM) MiB | samples (max gap ms) | spool files left | result |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|',
  ];
  const notes: string[] = [];
  for (const { label, r } of rows) {
    const m = r.memory;
    const anon = m.atPeak.reduce((a, p) => a + p.anonBytes, 0);
    const file = m.atPeak.reduce((a, p) => a + p.fileBytes, 0);
    const per = m.perProcess.map((p) => `${p.pid === m.rootPid ? 'primary ' : ''}${p.pid}: ${MiB(p.peakRssBytes)} (${MiB(p.hwmBytes)})`).join('; ');
    lines.push(
      `| ${label} | ${r.service} | ${Object.entries(r.statuses).map(([k, v]) => `${k}×${v}`).join(' ')} | ${fmt(r.wallSeconds, 1)} | ${fmt(r.mibPerSecond, 0)} | ` +
        `${MiB(m.baselineSumBytes)} | **${MiB(m.peakSumBytes)}** | ${MiB(m.hwmSumBytes)}${m.hwmReset ? '' : ' (not reset)'} | ${MiB(anon)} / ${MiB(file)} | ${per} | ` +
        `${m.samples} (${m.maxGapMs}) | ${r.spoolFilesLeft} | ${verdict(r.ok, r.pass)} |`,
    );
    if (r.errors.length > 0) notes.push(`- ${label}: ${r.errors.join('; ')}`);
  }
  return [...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}

function responsivenessTable(rows: { label: string; r: ResponsivenessResult }[]): string {
  const lines = [
    `One connection sends a RESPMOD of ${MiB(rows[0]!.r.bodyBytes)} MiB (Allow: 204) while a second sends OPTIONS one after another with a 20 ms pause, ` +
      `until the big answer arrives. Budget: OPTIONS p99 < ${rows[0]!.r.budgetMs} ms. With several processes the two connections may land on different ones.`,
    '',
    '| target | service | big answer (expected) | wall s | MiB/s | OPTIONS sent | p50 ms | **p99 ms** | max ms | probe failures | spool files left | result |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const notes: string[] = [];
  for (const { label, r } of rows) {
    lines.push(
      `| ${label} | ${r.service} | ${r.bigStatus || 'none'} (${r.expectStatus}) | ${fmt(r.wallSeconds, 1)} | ${fmt(r.mibPerSecond, 0)} | ${r.probes} | ` +
        `${fmt(r.latencyMs.p50, 2)} | **${fmt(r.latencyMs.p99, 2)}** | ${fmt(r.latencyMs.max, 2)} | ${r.probeFailures} | ${r.spoolFilesLeft ?? '—'} | ${verdict(r.ok, r.pass)} |`,
    );
    const why = [r.bigError, r.firstProbeError].filter((x) => x !== null);
    if (why.length > 0) notes.push(`- ${label}: ${why.join('; ')}`);
  }
  return [...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}

function largeBodySections(f: RunFile): string {
  const all = f.largeBody ?? [];
  const mem = all.flatMap((x) => (x.result.scenario === 'memory-64x100m' ? [{ label: x.label, r: x.result }] : []));
  const resp = all.flatMap((x) => (x.result.scenario === 'options-during-1g' ? [{ label: x.label, r: x.result }] : []));
  let md = '';
  if (mem.length > 0) md += `\n\n### Memory: memory-64x100m\n\n${memoryTable(mem)}`;
  if (resp.length > 0) md += `\n\n### Responsiveness: options-during-1g\n\n${responsivenessTable(resp)}`;
  return md;
}

export function renderReport(f: RunFile): string {
  const o = f.options;
  const m = f.machine;
  const targets = f.targets.map((t) => `- **${t.label}**: ${t.description}`).join('\n');
  let md =
    `## icap-bridge vs c-icap — ${f.date}\n\n` +
    `${m.nproc} CPUs (${m.cpuModel}), ${m.memoryMiB} MiB, kernel ${m.kernel}, node ${m.node}, c-icap ${m.cicap ?? '—'}, ${m.clamd ?? 'clamd —'}. ` +
    (f.records.length > 0
      ? `${o.runs} runs × ${o.durationS} s (+${o.warmupS} s warm-up) per cell and target, targets alternating; medians; ` +
        `p99 in ms; generator: ${o.generator === 'native' ? 'bench/native/icap-native.c' : `bench/loadgen.ts, ${o.loadgenThreads} thread(s)`}; `
      : 'Large-body scenarios only; ') +
    `wall time ${Math.round(f.wallSeconds / 60)} min.\n\n` +
    `${targets}`;
  if (f.records.length > 0) {
    md +=
      `\n\n${mainTable(f)}` +
      (o.cases.some((cs) => cs.offeredRate !== undefined) ? `\n\n### At the same offered rate (open loop)\n\n${openLoopTable(f)}` : '') +
      '\n\n### Per target: spread and CPU\n\n' +
      'Server CPU is the target\'s processes (icap-bridge: all its processes; c-icap: main and children; clamd) over the run window; ' +
      '"clamd µs/req" is what clamd spent per request behind it in the clamd scenarios. ' +
      '"loadgen queueing" is how long answers waited in the generator before it handled them (not in the latency); ' +
      '"cycle p99" is a connection\'s whole cycle per answer, the generator\'s delay in sending included: ' +
      'where the generator\'s ELU is near 1, latency alone leaves out the requests\' wait in the generator' +
      (o.generator === 'native' ? ' (native generator: "ELU" is the share of the window outside epoll_wait, waiting for a core included).\n\n' : '.\n\n') +
      detailTable(f);
  }
  if (f.records.some((r) => r.label === 'trivial')) md += `\n\n### Generator ceiling\n\n${ceilingTable(f)}`;
  md += largeBodySections(f);
  const left = Object.entries(f.spoolLeft).filter(([, n]) => n > 0);
  md += `\n\nSpool after stop: ${left.length === 0 ? 'empty for every icap-bridge instance' : left.map(([k, n]) => `${k}: ${n} entries left`).join(', ')}.`;
  const busyRuns = f.records.filter((r) => r.quietBefore !== null && !r.quietBefore.quiet).length;
  if (busyRuns > 0) md += `\n\nNote: ${busyRuns} of ${f.records.length} runs started while the machine was busy with other work (see the JSON).`;
  return md;
}
