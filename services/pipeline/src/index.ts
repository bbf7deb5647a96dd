export { createApp, type PipelineDeps } from './app.js';
