export { startStack, waitReady, opencvRuntimeEnv, SERVICES, StackError, type Stack, type StackOptions, type StackPorts, type ServiceName } from './stack.launcher.js';
export { groupPairs, linkBetween, GROUPING_POLICIES, type ScanPair, type ScanGroup } from './scan-groups.logic.js';
export { renderPage, writeReportPage, EMBED_MAX_IMAGES, type ThumbMode } from './scan-report.html.js';
export { buildReport, summaryLines, formatBytes, type ScanReport, type ReportGroup } from './scan-report.model.js';
export { collectFacts, imageFacts, type ImageFacts } from './image-facts.fs.js';
export { chooseKeeper, parseKeepRule, type KeepRule } from './keeper.logic.js';
export { framedLinks, marginIsDecoration } from './margin.measure.js';
export { loadDecisions, rememberDecisions } from './scan-decisions.store.js';
export { stateDirFor } from './workspace.config.js';
export {
  scoreQueries, scorePairs, summarise, scoreByTransform, recallAtK, prCurve, parseGroups, quantile, transformOf, originalOfQuery,
  type QueryOutcome, type QueryScores,
} from './eval-metrics.logic.js';
export { parseTruth, readTruth, type TruthEntry } from './eval-truth.fs.js';
export { renderPrCurve } from './pr-curve.svg.js';
export { exportCollection, importCollection, type ImportResult } from './collection-transfer.logic.js';
