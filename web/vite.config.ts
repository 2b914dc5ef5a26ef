// Builds the web front end (web/) into dist/web, which Kindred serves at / (src/protocol/http/static.ts).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // inline nothing: the page's CSP allows scripts, styles and images only from 'self'
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
});
