export { startStack, waitReady, SERVICES, StackError, type Stack, type StackOptions, type StackPorts, type ServiceName } from './stack.launcher.js';
export { groupPairs, linkBetween, GROUPING_POLICIES, type ScanPair, type ScanGroup } from './scan-groups.logic.js';
export { renderReport } from './scan-report.html.js';
export { exportCollection, importCollection, type ImportResult } from './collection-transfer.logic.js';
