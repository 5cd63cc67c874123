import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runApplication } from '../../src/main.ts';
import { vendorRoutes } from './vendor-routes.ts';

/**
 * npm start: the application (src/main.ts) with the live dashboard — this folder's page, served at
 * /, and the browser libraries it loads. Everything else is the application's own.
 */
await runApplication({
  dashboard: { staticDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'public'), routes: vendorRoutes() },
});
