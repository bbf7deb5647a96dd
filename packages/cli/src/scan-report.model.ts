import type { ImageFacts } from './image-facts.fs.js';
import { chooseKeeper, DEFAULT_RULE, type KeepRule } from './keeper.logic.js';
import { inverseRegion, type Quad } from './region.geometry.js';
import { standingDecision, type DecisionRecord, type GroupDecision } from './scan-decisions.store.js';
import type { ScanGroup, ScanPair } from './scan-groups.logic.js';

export interface ReportPair extends ScanPair {
  /** The match's corners in the query's normalised coordinates (region read backwards). */
  inverse_region?: Quad;
}

export interface ReportGroup extends Omit<ScanGroup, 'pairs'> {
  pairs: ReportPair[];
  keeper: string;
  keeper_reason: string;
  /** Bytes of every member but the keeper. */
  reclaimable_bytes: number;
  /** The weakest verified link inside the group. */
  min_score: number;
  methods: Array<NonNullable<ScanPair['method']>>;
}

export interface DismissedGroup { members: string[]; decision: GroupDecision; decided_at: string }

/** `doppel-report.json`: what `doppel apply` reads and what the HTML page is built from. */
export interface ScanReport {
  kind: 'doppel-scan-report';
  version: 2;
  root: string;
  folder: string;
  generated_at: string;
  files_scanned: number;
  keep_rule: KeepRule;
  summary: { groups: number; images_in_groups: number; redundant_files: number; reclaimable_bytes: number; dismissed_groups: number };
  groups: ReportGroup[];
  /** Facts of every file in a group (or a dismissed group), by relative path. */
  images: Record<string, ImageFacts>;
  /** Groups hidden by an earlier "not duplicates" / "keep all" whose files have not changed. */
  dismissed: DismissedGroup[];
  failed: Array<{ relative_path: string; error: string }>;
}

export interface BuildReportInput {
  root: string;
  folder: string;
  generatedAt: string;
  filesScanned: number;
  groups: ScanGroup[];
  facts: Map<string, ImageFacts>;
  rule?: KeepRule;
  /** Containment links whose outer copy only adds bars or a frame (framedLinks). */
  framed?: ReadonlySet<string>;
  decisions?: DecisionRecord[];
  failed?: ScanReport['failed'];
}

export function buildReport(input: BuildReportInput): ScanReport {
  const rule = input.rule ?? DEFAULT_RULE;
  const groups: ReportGroup[] = [];
  const dismissed: DismissedGroup[] = [];
  const images: Record<string, ImageFacts> = {};
  const stamp = (m: string) => input.facts.get(m);
  for (const g of input.groups) {
    for (const m of g.members) if (input.facts.has(m)) images[m] = input.facts.get(m)!;
    const standing = standingDecision(g.members, stamp, input.decisions ?? []);
    if (standing) {
      dismissed.push({ members: g.members, decision: standing.decision, decided_at: standing.decided_at });
      continue;
    }
    const { keeper, reason } = chooseKeeper(g, input.facts, rule, input.framed);
    const pairs = g.pairs.map((p) => {
      const inv = p.region ? inverseRegion(p.region as Quad) : undefined;
      return inv ? { ...p, inverse_region: inv } : { ...p };
    });
    groups.push({
      ...g,
      id: groups.length + 1,
      pairs,
      keeper,
      keeper_reason: reason,
      reclaimable_bytes: g.members.filter((m) => m !== keeper).reduce((n, m) => n + (input.facts.get(m)?.bytes ?? 0), 0),
      min_score: Math.min(...g.pairs.map((p) => p.score)),
      methods: [...new Set(g.pairs.map((p) => p.method ?? 'sift'))].sort(),
    });
  }
  const inGroups = groups.reduce((n, g) => n + g.members.length, 0);
  return {
    kind: 'doppel-scan-report',
    version: 2,
    root: input.root,
    folder: input.folder,
    generated_at: input.generatedAt,
    files_scanned: input.filesScanned,
    keep_rule: rule,
    summary: {
      groups: groups.length,
      images_in_groups: inGroups,
      redundant_files: inGroups - groups.length,
      reclaimable_bytes: groups.reduce((n, g) => n + g.reclaimable_bytes, 0),
      dismissed_groups: dismissed.length,
    },
    groups,
    images,
    dismissed,
    failed: input.failed ?? [],
  };
}

/** 1234567 -> "1.2 MB" (decimal units, as file managers show them). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The terminal summary of a scan. */
export function summaryLines(r: ScanReport): string[] {
  const s = r.summary;
  const lines = [
    `${s.groups} duplicate group${s.groups === 1 ? '' : 's'} (${s.images_in_groups} images) among ${r.files_scanned}: `
    + `${s.redundant_files} redundant file${s.redundant_files === 1 ? '' : 's'}, ${formatBytes(s.reclaimable_bytes)} reclaimable`,
  ];
  if (s.dismissed_groups) lines.push(`${s.dismissed_groups} group${s.dismissed_groups === 1 ? '' : 's'} hidden by earlier decisions (unchanged since)`);
  for (const g of [...r.groups].sort((a, b) => b.reclaimable_bytes - a.reclaimable_bytes).slice(0, 5)) {
    lines.push(`  group ${g.id}: keep ${g.keeper} (${g.keeper_reason}); ${g.members.length - 1} cop${g.members.length === 2 ? 'y' : 'ies'}, ${formatBytes(g.reclaimable_bytes)}`);
  }
  if (r.groups.length > 5) lines.push(`  ... ${r.groups.length - 5} more in the report`);
  return lines;
}
