export { buildService, type PipelineServiceDeps } from './app.js';
