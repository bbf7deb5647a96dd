export * from './app-error.js';
export * from './envelope.js';
export * from './logger.js';
export * from './config.js';
export * from './metrics.js';
export * from './routes.js';
export * from './create-service-app.js';
export * from './serve.js';
export { Registry } from 'prom-client';
